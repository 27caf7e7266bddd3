// Brings a part of the page into view after a click elsewhere made it (the Timeline's picked frame
// below a tall chart: at 1280x800 it would otherwise appear below the fold, as if nothing happened).
// `data.key` names the Streamlit container (its st-key-* class); `data.stamp` changes with each pick
// or run, so the same one is not scrolled to again on an unrelated rerun; `data.block` is
// scrollIntoView's ("nearest" or "start").

export default function ({ data }) {
  const done = (window.__fslIntoView = window.__fslIntoView || {});
  if (done[data.key] === data.stamp) return;
  const bring = () => {
    const el = document.querySelector(`.st-key-${data.key}`);
    if (!el) return false;
    done[data.key] = data.stamp;
    el.scrollIntoView({ block: data.block || "nearest", behavior: "instant" });
    return true;
  };
  if (bring()) return;
  const watch = new MutationObserver(() => bring() && watch.disconnect());
  watch.observe(document.body, { childList: true, subtree: true });
  return () => watch.disconnect();
}
