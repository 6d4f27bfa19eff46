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
  // A text delta is <template hx-swap-oob="beforeend:#live-…-text">text</template>: a template
  // parses anywhere, but htmx inserts an out-of-band element's child nodes, and a template keeps
  // its parsed nodes in .content instead: move them in, or the text never shows while it streams.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    if (fragment instanceof HTMLTemplateElement) {
      fragment.appendChild(fragment.content);
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    received += 1;
    if (received % ACK_EVERY === 0) {
      // Sent at once, never queued: a count from an earlier connection would be wrong.
      event.detail.socketWrapper.sendImmediately(JSON.stringify({ action: "ack", received: received }));
    }
  });
})();
