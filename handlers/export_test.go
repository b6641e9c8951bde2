package handlers

import "github.com/vigil-auth/vigil/handlers/web"

// OpenAPINamingProblems is namingProblems for the tests of package handlers_test, which
// check the full app's document.
var OpenAPINamingProblems = web.NamingProblems
