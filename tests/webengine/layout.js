// Body of the measuring function for run_pages.py: checks every card side on the page.
// Each side sits in <div class="db-frame card ..." data-card="ID SIDE"> at the page's width.
// Returns {frames, problems}: a problem is an element past the screen outside a scroll box,
// content clipped by overflow hidden, a code block wider than its box, or text under 4.5:1.
var MODES = window.DB_MODES || [["card", "mobile", "android"], ["card", "mobile", "android", "nightMode", "night_mode"]];
var problems = [];
var frames = Array.from(document.querySelectorAll(".db-frame"));
var screenRight = document.documentElement.clientWidth + 0.5;

function rgba(text) {
  var m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return [0, 0, 0, 0];
  var p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function over(top, bottom) {  // top colour (with alpha) composited over an opaque bottom
  var a = top[3];
  return [0, 1, 2].map(function (i) { return top[i] * a + bottom[i] * (1 - a); }).concat([1]);
}
function luminance(c) {
  var f = function (v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);  // WCAG 2 relative luminance
}
function background(el) {
  var layers = [];
  for (var e = el; e; e = e.parentElement) {
    var c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  var base = [255, 255, 255, 1];
  for (var i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
  return base;
}
function opacity(el) {
  var o = 1;
  for (var e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
  return o;
}
function scrollBox(el, frame) {
  for (var e = el.parentElement; e && e !== frame; e = e.parentElement) {
    var o = getComputedStyle(e).overflowX;
    if (o === "auto" || o === "scroll") return e;
  }
  return null;
}
function label(el) {
  return el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined ? "." + String(el.className).split(" ").join(".") : "");
}
function ownText(el) {
  var text = "";
  el.childNodes.forEach(function (n) { if (n.nodeType === 3) text += n.textContent; });
  return text.trim();
}

frames.forEach(function (frame) {
  var card = frame.dataset.card;
  MODES.forEach(function (classes) {
    frame.className = "db-frame " + classes.join(" ");
    var mode = classes.indexOf("nightMode") >= 0 ? "night" : "day";
    var elements = frame.querySelectorAll("*");
    for (var i = 0; i < elements.length; i++) {
      var el = elements[i];
      var r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      var style = getComputedStyle(el);
      if (!scrollBox(el, frame) && r.right > screenRight) {
        problems.push({card: card, mode: mode, problem: "past the screen", element: label(el), right: Math.round(r.right), text: el.textContent.trim().slice(0, 60)});
      }
      if ((style.overflowX === "hidden" || style.overflowX === "clip") && el.scrollWidth > el.clientWidth + 1) {
        problems.push({card: card, mode: mode, problem: "content clipped", element: label(el), text: el.textContent.trim().slice(0, 60)});
      }
      var text = ownText(el);
      if (text && style.visibility !== "hidden") {
        var bg = background(el);
        var fg = rgba(style.color);
        fg = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
        var l1 = luminance(fg), l2 = luminance(bg);
        var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
        if (ratio < 4.5) {
          problems.push({card: card, mode: mode, problem: "contrast " + ratio.toFixed(2), element: label(el), text: text.slice(0, 60), color: style.color, background: "rgb(" + bg.slice(0, 3).map(Math.round).join(",") + ")"});
        }
      }
    }
    frame.querySelectorAll(".codehilite pre").forEach(function (pre) {
      if (pre.scrollWidth > pre.clientWidth + 1) {
        problems.push({card: card, mode: mode, problem: "code line hidden", element: "pre", text: pre.textContent.slice(0, 60)});
      }
    });
  });
});
if (document.documentElement.scrollWidth > document.documentElement.clientWidth) {
  problems.push({card: "(page)", problem: "page wider than the screen", right: document.documentElement.scrollWidth});
}
return {frames: frames.length, problems: problems};
