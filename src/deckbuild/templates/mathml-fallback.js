// Fall back to Anki's MathJax where the client cannot lay out MathML (Anki desktop before
// 23.12 on Chromium 108, Android WebViews older than Chrome 109). Support is measured, not
// assumed: an <mspace> of known size has that size only where MathML layout exists.
(function () {
  var UNSAFE = /\\(href|url|class|cssId|style|data|html[A-Za-z]*|require|def|gdef|edef|xdef|let|futurelet|newcommand|renewcommand|providecommand|newenvironment|renewenvironment|DeclareMathOperator|Newextarrow|unicode|mmlToken|begingroup|endgroup)(?![A-Za-z])/;
  function mathmlWorks() {
    if (window.deckbuildMathML !== undefined) return window.deckbuildMathML;
    var probe = document.createElement("div");
    probe.style.cssText = "position:absolute;visibility:hidden;top:0;left:0";
    probe.innerHTML = '<math xmlns="http://www.w3.org/1998/Math/MathML"><mspace height="23px" width="77px"></mspace></math>';
    document.body.appendChild(probe);
    var box = probe.firstChild.getBoundingClientRect();
    document.body.removeChild(probe);
    window.deckbuildMathML = Math.abs(box.width - 77) < 2 && Math.abs(box.height - 23) < 2;
    return window.deckbuildMathML;
  }
  // No formula of a card is a link: should TeX past the check above still make one (a
  // package's macros can), its target goes once MathJax has typeset it.
  function unlink(spans) {
    for (var i = 0; i < spans.length; i++) {
      var linked = spans[i].querySelectorAll("[href]");
      for (var j = 0; j < linked.length; j++) linked[j].removeAttribute("href");
    }
  }
  function fallBack() {
    if (mathmlWorks()) return;
    var replaced = [];
    var maths = document.querySelectorAll("math");
    for (var i = 0; i < maths.length; i++) {
      var math = maths[i];
      // deckbuild keeps the TeX in data-tex; older builds kept it in an <annotation>.
      var note = math.querySelector('annotation[encoding="application/x-tex"]');
      var tex = math.hasAttribute("data-tex") ? math.getAttribute("data-tex") : note && note.textContent;
      // The TeX goes to Anki's MathJax, whose \href{javascript:...} makes a live link. The
      // build refuses such formulas, but a crafted build cache could forge the attribute: a
      // formula that names a link-making command, or one that defines macros (MathJax expands
      // them as text, so a macro could spell one), stays MathML.
      if (!tex || UNSAFE.test(tex)) continue;
      var span = document.createElement("span");
      span.className = "db-tex";
      var block = math.getAttribute("display") === "block";
      span.textContent = (block ? "\\[" : "\\(") + tex + (block ? "\\]" : "\\)");
      math.parentNode.replaceChild(span, math);
      replaced.push(span);
    }
    if (replaced.length && window.MathJax && window.MathJax.typesetPromise) {
      window.MathJax.typesetPromise(replaced).then(function () { unlink(replaced); }).catch(function () {});
    }
  }
  if (document.body) fallBack(); else document.addEventListener("DOMContentLoaded", fallBack);
})();
