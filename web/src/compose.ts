// Writing a post from photos (docs/RECORDS.md, "Photos" and "Drafts"): pick photos, upload them
// (POST /api/photos), ask for a draft (POST /api/drafts), edit it, and say on publish what the
// author did with the draft (`text_origin`). The form itself (place, date, rating) is in posts.ts.
import { ApiError, api } from "./api";
import { accessToken } from "./auth";
import { h, replace, toast } from "./dom";
import { lang, t } from "./i18n";

/** One stored photo, as POST /api/photos answers it. */
export interface UploadedPhoto {
  id: string;
  width: number;
  height: number;
  urls: { thumb: string; display: string };
}
interface UploadAnswer {
  photos: UploadedPhoto[];
}
interface Draft {
  text: string;
  source: "ai" | "template";
}
/** What the author did with a draft; matches the post's `text_origin`. */
export type TextOrigin = "author" | "ai_draft" | "ai_edited" | "template_draft";

const L = {
  en: { photos: "Photos", add: "Add photos", uploading: "Uploading…", draft: "Draft it for me", drafting: "Drafting…", menuLabel: "Menu", menu: "What did you eat? (comma-separated)", drafted: "Here is a draft: edit it or write your own.", template: "A simple draft from your menu (no AI configured)." },
  ko: { photos: "사진", add: "사진 추가", uploading: "올리는 중…", draft: "초안 써 줘", drafting: "쓰는 중…", menuLabel: "메뉴", menu: "무엇을 먹었나요? (쉼표로 구분)", drafted: "초안이에요. 고치거나 직접 쓰세요.", template: "메뉴로 만든 간단한 초안이에요 (AI 미설정)." },
};
const c = () => L[lang];

async function upload(files: File[]): Promise<UploadedPhoto[]> {
  const token = await accessToken();
  if (!token) throw new ApiError(401, "unauthorized", "log in first");
  const form = new FormData();
  for (const f of files) form.append("photo", f, f.name);
  return (await api<UploadAnswer>("POST", "/api/photos", form, token)).photos;
}

/** The photo and draft part of a post form. `text` is the form's text area, which a draft fills. */
export function composer(text: HTMLTextAreaElement, context: () => { place_id: string | null; rating: number }) {
  const photos: UploadedPhoto[] = [];
  let draft: Draft | null = null;
  const strip = h("ol", { class: "photo-strip", id: "post-photos" });
  const draw = () => replace(strip, photos.map((ph) => h("li", { "data-photo": ph.id }, h("img", { src: ph.urls.thumb, alt: "", width: 96, height: Math.round((96 * ph.height) / Math.max(1, ph.width)) }))));
  const input = h("input", { id: "post-photo-input", type: "file", accept: "image/jpeg,image/png,image/webp,image/gif", multiple: true, class: "visually-hidden" });
  const status = h("p", { class: "muted small", id: "draft-status", "aria-live": "polite" });
  input.addEventListener("change", async () => {
    const files = [...(input.files ?? [])];
    input.value = "";
    if (!files.length) return;
    status.textContent = c().uploading;
    try {
      photos.push(...(await upload(files)));
      draw();
      status.textContent = "";
    } catch (err) {
      status.textContent = "";
      toast(`${t.error}: ${err instanceof ApiError ? `${err.code} ${err.message}` : String(err)}`, "error");
    }
  });
  const menu = h("input", { id: "post-menu", placeholder: c().menu, autocomplete: "off", maxlength: 400 });
  const menuItems = () =>
    menu.value
      .split(/[,，、]/)
      .map((s) => s.trim())
      .filter(Boolean)
      .slice(0, 20)
      .map((name) => ({ name }));
  const draftButton = h("button", {
    type: "button",
    class: "ghost",
    id: "draft-button",
    onclick: async () => {
      const ctx = context();
      if (!ctx.place_id) return toast(t.searchPlace, "error");
      const token = await accessToken();
      if (!token) return;
      draftButton.disabled = true;
      status.textContent = c().drafting;
      try {
        draft = await api<Draft>("POST", "/api/drafts", { place_id: ctx.place_id, photos: photos.map((ph) => ph.id), menu: menuItems(), rating: ctx.rating, language: lang }, token);
        text.value = draft.text;
        status.textContent = draft.source === "template" ? c().template : c().drafted;
        status.dataset.source = draft.source;
      } catch (err) {
        status.textContent = "";
        toast(`${t.error}: ${err instanceof ApiError ? `${err.code} ${err.message}` : String(err)}`, "error");
      } finally {
        draftButton.disabled = false;
      }
    },
  }, "✨ ", c().draft);
  const el = h(
    "div",
    { class: "composer" },
    h("label", { for: "post-menu" }, c().menuLabel),
    menu,
    h("div", { class: "row" }, h("button", { type: "button", class: "ghost", id: "add-photos", onclick: () => input.click() }, "📷 ", c().add), draftButton),
    input,
    strip,
    status,
  );
  return {
    el,
    /** The post body's photo ids, menu and `text_origin` for what is in the text area now. */
    fields(): { photos: string[]; menu: { name: string }[]; text_origin: TextOrigin } {
      const now = text.value.trim();
      let origin: TextOrigin = "author";
      if (draft && now === draft.text.trim()) origin = draft.source === "ai" ? "ai_draft" : "template_draft";
      else if (draft && draft.source === "ai" && now) origin = "ai_edited";
      return { photos: photos.map((ph) => ph.id), menu: menuItems(), text_origin: origin };
    },
  };
}

/** A post's photos, as thumbnails that open the display size. */
export function photoRow(ids: string[]): HTMLElement | null {
  if (!ids.length) return null;
  return h(
    "div",
    { class: "photo-strip" },
    ids.map((id) => h("a", { href: `/api/photos/${encodeURIComponent(id)}/display`, target: "_blank", rel: "noopener" }, h("img", { src: `/api/photos/${encodeURIComponent(id)}/thumb`, alt: "", loading: "lazy", height: 72 }))),
  );
}
