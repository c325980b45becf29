// Picks the page from the path. The server answers index.html for each of these routes.
import "./style.css";
import { h, replace } from "./dom";
import { homePage } from "./home";
import { t } from "./i18n";
import { liveListPage, streamPage } from "./live";
import { feedPage, loginPage, placePage } from "./posts";
import { roomPage } from "./room";
import { topbar } from "./shell";

const app = document.getElementById("app")!;
const path = location.pathname;
const m = (re: RegExp) => path.match(re);
let r: RegExpMatchArray | null;

if (path === "/" || path === "/new") homePage(app);
else if ((r = m(/^\/join\/([^/]+)$/))) void roomPage(app, decodeURIComponent(r[1]!));
else if (path === "/live") liveListPage(app);
else if ((r = m(/^\/live\/([^/]+)$/))) void streamPage(app, decodeURIComponent(r[1]!), false);
else if ((r = m(/^\/studio\/([^/]+)$/))) void streamPage(app, decodeURIComponent(r[1]!), true);
else if (path === "/posts") feedPage(app);
else if (path === "/login") loginPage(app);
else if ((r = m(/^\/places\/([^/]+)$/))) void placePage(app, decodeURIComponent(r[1]!));
else replace(app, topbar(), h("main", { class: "center-card" }, h("div", { class: "card" }, h("h1", null, "404"), h("a", { href: "/" }, t.home))));
