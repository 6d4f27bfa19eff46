// The share viewer's page, /s/#<token>: the token stays in the URL's fragment, which browsers
// never send, so neither daphne's access log nor a proxy's ever holds it. Each time the socket
// (/ws/share/, the same for every link) opens, its first frame carries the token; only the
// page's first socket counts as a view, not its reconnects.
(function () {
  "use strict";
  var token = window.location.hash.slice(1);
  var first = true;
  var titled = false;
  document.addEventListener("htmx:wsOpen", function (event) {
    var opening = { action: "open", token: token, view: first };
    first = false;
    // Before anything queued: the server reads nothing else until the token.
    event.detail.socketWrapper.sendImmediately(JSON.stringify(opening));
  });
  // The heading arrives over the socket; the tab's title follows it once.
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (titled) {
      return;
    }
    var heading = document.querySelector("#shared h1[data-title]");
    if (heading) {
      titled = true;
      document.title = heading.textContent + " · shared · Agent playground";
    }
  });
  // Another link pasted over this one: a page opens one link.
  window.addEventListener("hashchange", function () {
    window.location.reload();
  });
})();
