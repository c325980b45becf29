// Home: open a map room (POST /api/rooms), keep its host key on this device, go to its link.
import { api, type CreatedRoom } from "./api";
import { h, replace, toast } from "./dom";
import { t } from "./i18n";
import { onLanguageChange, topbar } from "./shell";

export function homePage(app: HTMLElement): void {
  const render = () => {
    const title = h("input", { id: "room-title-input", name: "title", maxlength: 100, placeholder: t.roomTitlePlaceholder });
    const mode = h("select", { id: "vote-mode", name: "mode" }, h("option", { value: "single" }, t.voteSingle), h("option", { value: "approval" }, t.voteApproval));
    const submit = h("button", { type: "submit", class: "primary big", id: "create-room" }, t.create);
    const form = h(
      "form",
      {
        class: "card create-card",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          submit.disabled = true;
          submit.textContent = t.creating;
          try {
            const body: Record<string, unknown> = { title: title.value.trim() };
            if (mode.value === "approval") body.vote_mode = { kind: "approval", max: 3 };
            const room = await api<CreatedRoom>("POST", "/api/rooms", body);
            localStorage.setItem(`wagu.host.${room.share_token}`, room.host_key);
            location.assign(`/join/${room.share_token}`);
          } catch (err) {
            toast(`${t.error}: ${String(err)}`, "error");
            submit.disabled = false;
            submit.textContent = t.create;
          }
        },
      },
      h("h2", null, t.createRoom),
      h("p", { class: "muted" }, t.createRoomLead),
      h("label", { for: "room-title-input" }, t.roomTitle),
      title,
      h("label", { for: "vote-mode" }, t.voteMode),
      mode,
      submit,
    );
    replace(
      app,
      topbar(),
      h(
        "main",
        { class: "home" },
        h("section", { class: "hero" }, h("div", { class: "hero-mark", "aria-hidden": "true" }, "🍜"), h("h1", null, t.tagline), h("p", { class: "muted" }, "와구 · Wagu")),
        form,
        h("a", { class: "card link-card", href: "/live" }, h("span", { class: "live-dot", "aria-hidden": "true" }), h("strong", null, t.live), h("span", { class: "muted" }, t.liveLead)),
        h("a", { class: "card link-card", href: "/posts" }, h("span", { "aria-hidden": "true" }, "📝"), h("strong", null, t.posts), h("span", { class: "muted" }, t.postsLead)),
      ),
    );
  };
  onLanguageChange(render);
  render();
}
