// Keys of their own for the result grid: j / ArrowDown moves to the next hit, k / ArrowUp to the
// previous one, in rank order (the ▶ button of each card, in page order), Enter plays the hit
// under focus (the button's own Enter) and w explains it (its card's Why?). Typing in a text box is
// left alone; Enter (which runs the query) and Esc leave a one-line box, so the next j, or the next
// Tab, goes to the first hit. Each card is one Tab stop, its ▶: Why? and the image's fullscreen
// button are left to the mouse and to w.

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

function label(b) {
  return b.textContent.trim(); // not innerText: reading it makes the browser lay the page out
}

function card(play) {
  // the bordered container a ▶ sits in: the nearest block above it that also holds a Why?, and no
  // other ▶ (a card still being drawn has no Why? yet: the block above it holds other cards). A
  // button with a tooltip has a hidden twin in its stButton, so ▶s are counted by stButton.
  for (let el = play.parentElement; el && el !== document.body; el = el.parentElement) {
    if (!el.matches("[data-testid='stVerticalBlock']")) continue;
    const plays = [...el.querySelectorAll("[data-testid='stButton']")].filter((s) => PLAY.test(label(s)));
    if (plays.length > 1) return null;
    if ([...el.querySelectorAll("button")].some((b) => label(b) === "Why?")) return el;
  }
  return null;
}

function oneStopPerCard() {
  for (const play of document.querySelectorAll("button")) {
    if (!PLAY.test(label(play))) continue;
    const box = card(play);
    if (!box) continue;
    for (const b of box.querySelectorAll("button")) {
      if (!PLAY.test(label(b)) && b.tabIndex !== -1) b.tabIndex = -1;
    }
  }
}

let handedBack = false; // the last Enter or Esc left the query box: the next Tab goes to the first hit

function onKey(e) {
  const target = e.target;
  const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  if (typing && target.tagName === "INPUT" && (e.key === "Escape" || (e.key === "Enter" && !e.shiftKey))) {
    // Enter runs the query and Esc leaves the box: either way the keys go back to the results
    // (Streamlit takes the value on Enter or on leaving the box, so leaving it loses nothing)
    setTimeout(() => {
      target.blur();
      handedBack = true;
    }, 0);
    return;
  }
  if (typing) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const list = hits();
  if (e.key === "Tab" && !e.shiftKey && handedBack && document.activeElement === document.body && list.length) {
    e.preventDefault();
    list[0].focus();
    return;
  }
  if (e.key === "w" && list.includes(document.activeElement)) {
    const box = card(document.activeElement);
    const why = box && [...box.querySelectorAll("button")].find((b) => label(b) === "Why?");
    if (why) why.click();
    return;
  }
  const step = { j: 1, ArrowDown: 1, k: -1, ArrowUp: -1 }[e.key];
  if (!step) return;
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
  document.addEventListener("focusin", () => {
    handedBack = false;
  });
  let quiet = null; // cards are redrawn by each run: their extra Tab stops are taken out once it settles
  new MutationObserver(() => {
    clearTimeout(quiet);
    quiet = setTimeout(oneStopPerCard, 100);
  }).observe(document.body, { childList: true, subtree: true });
}
