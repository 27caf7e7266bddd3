// Keys of their own for the result grid: j / ArrowDown moves to the next hit, k / ArrowUp to the
// previous one, in rank order (the ▶ button of each card, in page order), and Enter plays the hit
// under focus (the button's own Enter). Typing in a text box is left alone; Enter (which runs the
// query) and Esc leave a one-line box, so the next j goes to the results.

const PLAY = /^▶ /;

function shown(el) {
  // Streamlit keeps a hidden twin of some buttons (for measuring): only the one on screen counts
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
}

function hits() {
  const panel = document.querySelector("[role='tabpanel']:not([hidden])") || document;
  return [...panel.querySelectorAll("button")].filter((b) => PLAY.test(b.innerText.trim()) && shown(b));
}

function onKey(e) {
  const target = e.target;
  const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  if (typing && target.tagName === "INPUT" && (e.key === "Escape" || (e.key === "Enter" && !e.shiftKey))) {
    // Enter runs the query and Esc leaves the box: either way the keys go back to the results
    // (Streamlit takes the value on Enter or on leaving the box, so leaving it loses nothing)
    setTimeout(() => target.blur(), 0);
    return;
  }
  if (typing) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const step = { j: 1, ArrowDown: 1, k: -1, ArrowUp: -1 }[e.key];
  if (!step) return;
  const list = hits();
  if (!list.length) return;
  const at = list.indexOf(document.activeElement);
  const next = list[Math.min(list.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
  e.preventDefault();
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

export default function () {
  if (window.__fslHitKeys) return;
  window.__fslHitKeys = true;
  document.addEventListener("keydown", onKey);
}
