// Command oapiclient is what a relying application writes against the Go client that
// oapi-codegen generates from Vigil's /openapi.json (package vigilclient, generated next to
// it by TestGeneratedGoClient): sign up, sign in, whoami, the sessions, sign out. It takes
// Vigil's base URL and exits non-zero, saying why, at the first answer that is not the
// expected one.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"vigil.test/oapiclient/vigilclient"
)

const password = "umbrella-cactus-violin-47"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: oapiclient BASE_URL")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "oapiclient:", err)
		os.Exit(1)
	}
	fmt.Println("round trip ok")
}

func run(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := vigilclient.NewClientWithResponses(base)
	if err != nil {
		return err
	}

	signup, err := c.CreateAccountWithResponse(ctx, vigilclient.CreateAccountJSONRequestBody{
		Email: "ada@example.com", Password: password, FirstName: "Ada", LastName: "Lovelace",
	})
	if err != nil {
		return fmt.Errorf("createAccount: %w", err)
	}
	if signup.JSON201 == nil {
		return fmt.Errorf("createAccount: %d %s", signup.StatusCode(), signup.Body)
	}
	accountID := signup.JSON201.AccountId

	login, err := c.LoginWithResponse(ctx, vigilclient.LoginJSONRequestBody{Email: "ada@example.com", Password: password})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if login.JSON200 == nil || login.JSON200.Status != vigilclient.Authenticated || login.JSON200.SessionToken == nil {
		return fmt.Errorf("login: %d %s", login.StatusCode(), login.Body)
	}
	if login.JSON200.Session == nil || login.JSON200.Session.AccountId != accountID {
		return fmt.Errorf("login: the session is not the new account's: %s", login.Body)
	}
	token := *login.JSON200.SessionToken
	bearer := func(ctx context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}

	who, err := c.GetWhoamiWithResponse(ctx, nil, bearer)
	if err != nil {
		return fmt.Errorf("getWhoami: %w", err)
	}
	if who.JSON200 == nil || who.JSON200.AccountId != accountID || who.JSON200.Aal != vigilclient.Aal1 {
		return fmt.Errorf("getWhoami: %d %s", who.StatusCode(), who.Body)
	}
	sessionID := who.JSON200.SessionId

	// The sign-in wrote events; min_position makes the read wait until the list has them.
	var minPosition *int
	if p, err := position(login.HTTPResponse); err == nil {
		minPosition = &p
	}
	sessions, err := c.ListMySessionsWithResponse(ctx, &vigilclient.ListMySessionsParams{MinPosition: minPosition}, bearer)
	if err != nil {
		return fmt.Errorf("listMySessions: %w", err)
	}
	if sessions.JSON200 == nil || len(sessions.JSON200.Items) != 1 ||
		sessions.JSON200.Items[0].Id != sessionID || !sessions.JSON200.Items[0].Current {
		return fmt.Errorf("listMySessions: %d %s (want the one current session %s)", sessions.StatusCode(), sessions.Body, sessionID)
	}

	out, err := c.LogoutWithResponse(ctx, bearer)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if out.StatusCode() != http.StatusNoContent {
		return fmt.Errorf("logout: %d %s", out.StatusCode(), out.Body)
	}
	// A problem answer decodes too: the token is no longer valid.
	who, err = c.GetWhoamiWithResponse(ctx, nil, bearer)
	if err != nil {
		return fmt.Errorf("getWhoami after logout: %w", err)
	}
	if who.ApplicationproblemJSON401 == nil || who.ApplicationproblemJSON401.Code != "unauthenticated" {
		return fmt.Errorf("getWhoami after logout: %d %s, want the 401 problem unauthenticated", who.StatusCode(), who.Body)
	}
	return nil
}

// position reads the Vigil-Position header of an answer that wrote to the log.
func position(res *http.Response) (int, error) {
	var p int
	_, err := fmt.Sscan(res.Header.Get("Vigil-Position"), &p)
	return p, err
}
