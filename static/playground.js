// Flow control for the session socket: every 8th frame, tell the server how many frames this
// page has applied since the socket opened. The server keeps at most 32 frames unacknowledged
// and coalesces the stream meanwhile, so a slow tab never makes it buffer without bound.
// Reconnects use htmx's default full-jitter backoff (htmx.config.wsReconnectDelay).
(function () {
  "use strict";
  var ACK_EVERY = 8;
  var received = 0;
  document.addEventListener("htmx:wsOpen", function () {
    received = 0;
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    received += 1;
    if (received % ACK_EVERY === 0) {
      // Sent at once, never queued: a count from an earlier connection would be wrong.
      event.detail.socketWrapper.sendImmediately(JSON.stringify({ action: "ack", received: received }));
    }
  });
})();
