/**
 * `GET /ui` (SPEC.md 13.5): the operator's page, one HTML document with its style and script
 * inline (no build step, no network access beyond ferry). The same page serves a primary and a
 * replica: it shows the parts of the role its status names.
 *
 * @module
 */

import { UI_SCRIPT } from "./script.ts";
import { UI_STYLE } from "./style.ts";

/** The page. */
export const UI_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ferry</title>
<style>${UI_STYLE}</style>
</head>
<body>
<header>
  <h1 id="title">ferry</h1>
  <span id="status-line">connecting…</span>
  <span id="error" class="error"></span>
</header>
<main>
  <section><div class="cards" id="summary"></div></section>
  <section data-role="primary"><h2>Replicas</h2><div class="scroll" id="replicas"></div></section>
  <section data-role="primary"><h2>Slots</h2><div class="scroll" id="slots"></div></section>
  <section data-role="primary"><h2>Commit waits</h2><div class="cards" id="commits"></div></section>
  <section data-role="replica" hidden><h2>Re-bootstrap</h2><div id="replica-detail"></div></section>
  <section><h2>Recent events</h2><ul id="events"></ul></section>
</main>
<script>${UI_SCRIPT}</script>
</body>
</html>
`;
