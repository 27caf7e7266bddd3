// The pointer on a Plotly chart of film time (the Search tab's score strip): hovering shows the
// frame under it, a click picks that frame. Plotly's hover label holds text only (plotly.js #1323)
// and Streamlit reports no selection for a heatmap, so this listens to the chart's own
// plotly_hover / plotly_unhover / plotly_click events. The thumbnails come from Python as data:
// URIs, a bounded number per film row (`picks` = their frame indices); a point without its own
// thumbnail shows the nearest one, captioned with that frame's time. A click sets the state
// value `pick` = {film, frame}, which reruns the strip's part of the page.

const TIP_ID = "fsl-hover-preview";

function tip() {
  let el = document.getElementById(TIP_ID);
  if (!el) {
    el = document.createElement("div");
    el.id = TIP_ID;
    el.setAttribute("role", "tooltip");
    Object.assign(el.style, {
      position: "fixed",
      zIndex: "1000",
      pointerEvents: "none",
      display: "none",
      padding: "4px",
      borderRadius: "6px",
      background: "rgba(14, 17, 23, 0.92)",
      boxShadow: "0 2px 8px rgba(0, 0, 0, 0.5)",
      color: "#fafafa",
      font: "12px sans-serif",
      textAlign: "center",
    });
    const img = document.createElement("img");
    Object.assign(img.style, { display: "block", width: "160px", borderRadius: "4px" });
    img.alt = "frame under the pointer";
    const caption = document.createElement("div");
    caption.className = "fsl-caption";
    el.append(img, caption);
    document.body.appendChild(el);
  }
  return el;
}

// Index in `picks` (sorted frame indices) of the one nearest to frame `i`.
function nearest(picks, i) {
  let lo = 0;
  let hi = picks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (picks[mid] < i) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && i - picks[lo - 1] <= picks[lo] - i ? lo - 1 : lo;
}

// The film row and frame index of an event's first point (its customdata's third value).
function pointed(gd, e) {
  const p = e.points && e.points[0];
  const row = p && (gd.__fslPreview || [])[p.curveNumber];
  if (!row || !p.customdata || p.customdata.length < 3) return null;
  return { row, frame: Number(p.customdata[2]) };
}

function show(gd, e) {
  const at = pointed(gd, e);
  if (!at || !at.row.picks.length) return;
  const { row, frame } = at;
  const k = nearest(row.picks, frame);
  const el = tip();
  el.querySelector("img").src = row.images[k];
  const exact = row.picks[k] === frame;
  el.querySelector(".fsl-caption").textContent = exact ? row.times[k] : `nearest preview: ${row.times[k]}`;
  el.dataset.time = row.times[k];
  el.dataset.film = row.film;
  el.style.display = "block";
  const box = gd.getBoundingClientRect();
  const x = e.event && e.event.clientX !== undefined ? e.event.clientX : box.left + box.width / 2;
  const y = e.event && e.event.clientY !== undefined ? e.event.clientY : box.top;
  place(el, x, y);
  el.querySelector("img").onload = () => place(el, x, y); // its height is known once it has loaded
}

// Above the pointer (Plotly puts its own label beside the point), kept inside the window.
function place(el, x, y) {
  const w = el.offsetWidth;
  const h = el.offsetHeight;
  el.style.left = `${Math.min(Math.max(x - w / 2, 4), window.innerWidth - w - 4)}px`;
  el.style.top = `${y - h - 28 >= 0 ? y - h - 28 : y + 28}px`; // clear of Plotly's label beside the point
}

function hide() {
  const el = document.getElementById(TIP_ID);
  if (el) el.style.display = "none";
}

function hook(gd, rows, pick) {
  gd.__fslPreview = rows; // refreshed on every run: the rows follow the query's films
  gd.__fslPick = pick; // and so is where a click is reported
  if (gd.__fslHooked) return;
  gd.__fslHooked = true;
  gd.on("plotly_hover", (e) => show(gd, e));
  gd.on("plotly_unhover", hide);
  gd.on("plotly_click", (e) => {
    const at = pointed(gd, e);
    if (at) gd.__fslPick({ film: at.row.id, frame: at.frame, click: Date.now() }); // a new click, even on the same cell
  });
}

export default function ({ data, setStateValue }) {
  const selector = `.st-key-${data.chart} .js-plotly-plot`;
  const pick = (value) => setStateValue("pick", { ...value, drawn: data.drawn }); // what the strip showed
  const attach = () => {
    const gd = document.querySelector(selector);
    if (gd && typeof gd.on === "function") hook(gd, data.rows, pick);
  };
  attach();
  // the chart may be drawn after this component runs, or drawn anew: hook it whenever it appears
  const watch = new MutationObserver(attach);
  watch.observe(document.body, { childList: true, subtree: true });
  return () => {
    watch.disconnect();
    hide();
  };
}
