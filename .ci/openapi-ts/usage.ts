// What a TypeScript relying application writes against the types openapi-typescript
// generates from Vigil's /openapi.json (./vigil.d.ts, generated beside this file by
// .ci/openapi): tsc --noEmit --strict must compile it, so the types are precise (not any).
import type { components, operations, paths } from "./vigil";

type LoginBody = paths["/api/v1/login"]["post"]["requestBody"]["content"]["application/json"];
type LoginResult = components["schemas"]["LoginResult"];
type Session = operations["getWhoami"]["responses"][200]["content"]["application/json"];
type SessionPage = operations["listMySessions"]["responses"][200]["content"]["application/json"];
type Problem = components["schemas"]["Problem"];

async function call<T>(base: string, method: string, path: string, token?: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    const problem = (await res.json()) as Problem;
    throw new Error(`${problem.status} ${problem.code}: ${problem.detail ?? problem.title}`);
  }
  return (await res.json()) as T;
}

export async function signIn(base: string, email: string, password: string): Promise<{ session: Session; sessions: SessionPage }> {
  const body: LoginBody = { email, password };
  const result = await call<LoginResult>(base, "POST", "/api/v1/login", undefined, body);
  if (result.status !== "authenticated" || result.session_token === undefined) {
    throw new Error(`sign-in needs more: ${result.status} (${(result.methods ?? []).join(", ")})`);
  }
  const session = await call<Session>(base, "GET", "/api/v1/whoami", result.session_token);
  const level: "aal1" | "aal2" = session.aal;
  const sessions = await call<SessionPage>(base, "GET", "/api/v1/me/sessions", result.session_token);
  const current = sessions.items.find((s) => s.current);
  console.log(level, current?.id, sessions.next_cursor ?? "last page");
  return { session, sessions };
}

// @ts-expect-error: the password is required.
const missing: LoginBody = { email: "ada@example.com" };
// @ts-expect-error: no such status.
const wrong: LoginResult["status"] = "signed_in";
export { missing, wrong };
