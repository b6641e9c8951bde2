package handlers

// OpenAPINamingProblems is namingProblems for the tests of package handlers_test, which
// check the full app's document.
var OpenAPINamingProblems = namingProblems
