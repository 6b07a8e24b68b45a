// Destructive actions ask first: a form (or the button that submits it) with
// data-confirm="question" is submitted only once the user agrees. No inline script (the
// Content-Security-Policy forbids it): every dashboard page loads this file, and it
// listens on the document, so forms that htmx swaps in later ask too.
document.addEventListener(
  "submit",
  function (event) {
    var form = event.target;
    var button = event.submitter;
    var question =
      (button && button.getAttribute && button.getAttribute("data-confirm")) ||
      (form && form.getAttribute ? form.getAttribute("data-confirm") : null);
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true
);
