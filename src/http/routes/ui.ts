/**
 * `GET /ui` (SPEC.md 13.5, admin): the operator's page; `GET /` points to it and to
 * `/openapi.json`. A browser cannot send a bearer token when it opens a page, so `/ui` also takes
 * it once as `?token=`; the page then keeps it in the tab's session storage, removes it from the
 * address bar and sends it in a header.
 */

import type { Context } from "hono";
import type { Auth } from "../auth.ts";
import { requireRole } from "../guards.ts";
import { type AppEnv, newRouter } from "../router.ts";
import { UI_PAGE } from "../ui/page.ts";

/** The page and the index. */
export function uiRoutes(options: { auth: Auth }) {
  const app = newRouter();
  app.get("/ui", (c) => {
    _authorizeWithQueryToken(c, options.auth);
    requireRole(c, "admin");
    c.header("cache-control", "no-store");
    c.header(
      "content-security-policy",
      "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
    );
    return c.html(UI_PAGE);
  });
  app.get("/", (c) =>
    c.json({
      ui: "/ui",
      openapi: "/openapi.json",
      message: "ferry: the operator's page is /ui, the API is described at /openapi.json",
    }));
  return app;
}

/** Without an `Authorization` header, `?token=` authenticates the page request. */
function _authorizeWithQueryToken(c: Context<AppEnv>, auth: Auth): void {
  const token = c.req.query("token");
  if (token === undefined || c.req.header("authorization") !== undefined) return;
  c.set("auth", auth.authenticate(`Bearer ${token}`));
}
