// What the user opened, closed or ticked stays so while htmx refreshes the page.
//
// A live part (`.live`) is replaced every few seconds with fresh markup, which would
// re-open every collapsed <details> and clear every ticked checkbox. The user's choices
// are remembered here by element id, as they make them, and put back after each swap.
(function () {
  var opened = {}; // details id -> open (true) or closed (false), as the user left it
  var ticked = {}; // checkbox id -> checked

  document.addEventListener(
    "toggle",
    function (event) {
      var el = event.target;
      // Also fires for what afterSwap restores: it then reads what was restored.
      if (el.tagName === "DETAILS" && el.id) {
        opened[el.id] = el.open;
      }
    },
    true
  );
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.type === "checkbox" && el.id) {
      ticked[el.id] = el.checked;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    Object.keys(opened).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.tagName === "DETAILS" && el.open !== opened[id]) {
        el.open = opened[id];
      }
    });
    Object.keys(ticked).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.type === "checkbox") {
        el.checked = ticked[id];
      }
    });
  });
})();
