// The page frame: a header with the app name, navigation and the language switch.
import { h } from "./dom";
import { lang, setLang, t } from "./i18n";

let rerender: () => void = () => location.reload();

/** The current page re-renders itself in the new language (default: reload). */
export function onLanguageChange(f: () => void): void {
  rerender = f;
}

export function langButton(): HTMLButtonElement {
  return h(
    "button",
    {
      class: "ghost lang",
      type: "button",
      "aria-label": lang === "ko" ? "Switch to English" : "한국어로 보기",
      onclick: () => {
        setLang(lang === "ko" ? "en" : "ko");
        rerender();
      },
    },
    t.lang,
  );
}

export function logo(): HTMLAnchorElement {
  return h("a", { href: "/", class: "logo", "aria-label": t.home }, h("span", { class: "logo-mark", "aria-hidden": "true" }, "와"), h("span", null, t.appName));
}

export function topbar(...right: (Node | null)[]): HTMLElement {
  return h("header", { class: "topbar" }, logo(), h("nav", { class: "topnav" }, h("a", { href: "/live" }, t.live), h("a", { href: "/posts" }, t.posts)), h("div", { class: "spacer" }), ...right, langButton());
}
