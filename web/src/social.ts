// Social log-in in the web client (docs/RECORDS.md, "Social log-in"). The log-in page shows a
// button for each provider the server lists (GET /api/auth/providers); a button is a plain
// top-level navigation to the provider's start URL (the provider's pages cannot run in a
// frame or a fetch). The server's callback sends the browser back to /login with a fragment:
// `#social_code=…`, a one-time code (one minute, bound to this browser's cookie) traded at
// POST /api/auth/oidc/exchange for the usual session, or `#social_error=<code>`. The fragment
// is read once and removed from the address bar; tokens never appear in a URL.
import { api, ApiError } from "./api";
import { save, type SessionBody } from "./auth";
import { h, replace } from "./dom";
import { lang } from "./i18n";

export interface Provider {
  name: string;
  label: string;
  kind: "oidc" | "oauth2";
  start_url: string;
}

/** Where to go after the provider: kept across the trip through its pages. */
const NEXT_KEY = "wagu.social.next";

const L = {
  en: {
    with: (label: string) => `Continue with ${label}`,
    or: "or with your email",
    finishing: "Signing you in…",
    errors: {
      oidc_denied: "Sign-in was cancelled at the provider. Nothing was shared with Wagu.",
      invalid_state: "That sign-in expired or was already used. Please try again.",
      invalid_code: "That sign-in expired or was already used. Please try again.",
      oidc_failed: "The provider's answer could not be verified. Please try again.",
      unknown_provider: "That sign-in option is not available.",
      rate_limited: "Too many attempts. Wait a minute and try again.",
    } as Record<string, string>,
    otherError: "Sign-in failed. Please try again.",
  },
  ko: {
    with: (label: string) => `${label}(으)로 계속하기`,
    or: "또는 이메일로",
    finishing: "로그인하는 중…",
    errors: {
      oidc_denied: "로그인을 취소했어요. Wagu에 아무 정보도 전달되지 않았어요.",
      invalid_state: "로그인이 만료되었거나 이미 사용되었어요. 다시 시도해 주세요.",
      invalid_code: "로그인이 만료되었거나 이미 사용되었어요. 다시 시도해 주세요.",
      oidc_failed: "로그인 제공자의 응답을 확인하지 못했어요. 다시 시도해 주세요.",
      unknown_provider: "사용할 수 없는 로그인 방법이에요.",
      rate_limited: "시도가 너무 많아요. 잠시 후 다시 시도해 주세요.",
    } as Record<string, string>,
    otherError: "로그인하지 못했어요. 다시 시도해 주세요.",
  },
};
const s = () => L[lang];

/** The message for a social log-in error code. */
export function socialErrorText(code: string): string {
  return s().errors[code] ?? s().otherError;
}

/** The callback's fragment, read once: it is removed from the address bar at once. */
export function takeSocialFragment(): { code?: string; error?: string } {
  const f = new URLSearchParams(location.hash.slice(1));
  const code = f.get("social_code") ?? undefined;
  const error = f.get("social_error") ?? undefined;
  if (code || error) history.replaceState(null, "", location.pathname + location.search);
  return { code, error };
}

/** Trades the one-time code for a session and saves it; the path to go to next. */
export async function finishSocial(code: string): Promise<string> {
  save(await api<SessionBody>("POST", "/api/auth/oidc/exchange", { code }));
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/posts";
}

export function finishingText(): string {
  return s().finishing;
}

/** The error code of a failed exchange. */
export function errorCode(err: unknown): string {
  return err instanceof ApiError ? err.code : "internal";
}

/** A box that fills with one button per provider (nothing when none is configured). */
export function socialButtons(target: string): HTMLElement {
  const box = h("div", { class: "social", id: "social-buttons" });
  void api<{ providers: Provider[] }>("GET", "/api/auth/providers")
    .then(({ providers }) => {
      if (!providers.length) return;
      replace(
        box,
        providers.map((p) =>
          h(
            "a",
            {
              class: `button social-button ${p.name}`,
              href: p.start_url,
              "data-provider": p.name,
              onclick: () => sessionStorage.setItem(NEXT_KEY, target),
            },
            s().with(p.label),
          ),
        ),
        h("p", { class: "muted small social-or" }, s().or),
      );
    })
    .catch(() => undefined);
  return box;
}
