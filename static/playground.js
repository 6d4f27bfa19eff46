// Flow control for the session socket: every ACK_EVERY-th frame, tell the server how many frames
// this page has applied since the socket opened. The server keeps at most ACK_WINDOW frames
// unacknowledged and coalesces the stream meanwhile, so a slow tab never makes it buffer without
// bound. Both numbers and the reconnect codes are defined once, in playground/protocol.py, and
// reach this script as data attributes of <body> (templates/base.html).
// Reconnects use htmx's default full-jitter backoff (htmx.config.wsReconnectDelay).
//
// "Come back" closes: htmx's ws extension reconnects by itself only after 1006/1011/1012/1013,
// but daphne cannot send 1012/1013, so the server says "restart" (4012) or "try again later"
// (4013) instead (RECONNECT_CODES) and this script reconnects on them,
// with the same backoff. Every other 4xxx close is a refusal: final.
(function () {
  "use strict";
  var ACK_EVERY = Number(document.body.dataset.ackEvery);
  var RECONNECT_CODES = document.body.dataset.reconnectCodes.split(" ").map(Number);
  var received = 0;
  var retries = 0; // reconnects since the server last sent a frame
  document.addEventListener("htmx:wsOpen", function () {
    received = 0;
  });
  // A final close (a refusal: revoked, not yours, ...): nothing streams any more, say so.
  function ended() {
    var status = document.getElementById("status");
    if (status) {
      status.dataset.busy = "false";
      status.innerHTML = "<span>Disconnected</span>";
    }
    document.querySelectorAll(".streaming").forEach(function (live) {
      live.classList.remove("streaming");
    });
  }
  document.addEventListener("htmx:wsClose", function (event) {
    var socket = event.detail.socketWrapper;
    var code = event.detail.event.code;
    if (code >= 4000 && RECONNECT_CODES.indexOf(code) < 0) {
      ended();
      return;
    }
    if (RECONNECT_CODES.indexOf(code) < 0 || !document.body.contains(event.target)) {
      return;
    }
    // Full jitter, as htmx's own: a random wait up to 1 s, doubling per retry up to 64 s.
    var delay = 1000 * Math.pow(2, Math.min(retries, 6)) * Math.random();
    retries += 1;
    setTimeout(function () {
      if (document.body.contains(event.target)) {
        socket.reconnect();
      }
    }, delay);
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
  // Notices (#notice): an "info" one goes by itself after NOTICE_MS; any one when dismissed,
  // and when the user sends the next message (an error then describes the past).
  var NOTICE_MS = 6000;
  var timedNotice = null;
  function clearNotice() {
    var notice = document.getElementById("notice");
    if (notice) {
      notice.className = "notice";
      notice.removeAttribute("data-code");
      notice.textContent = "";
    }
  }
  document.addEventListener("htmx:oobAfterSwap", function () {
    var notice = document.getElementById("notice");
    if (!notice || notice === timedNotice || !notice.classList.contains("info")) {
      return;
    }
    timedNotice = notice;
    setTimeout(function () {
      if (document.getElementById("notice") === notice) {
        clearNotice();
      }
    }, NOTICE_MS);
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#notice .dismiss")) {
      clearNotice();
    }
  });
  // The composer: Enter sends, Shift+Enter is a new line (as in every chat); not while an input
  // method composes a character.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || !box.closest) {
      return;
    }
    var composer = box.closest("#composer, .edit-form");
    if (composer && box.tagName === "TEXTAREA") {
      event.preventDefault();
      if (box.value.trim()) {
        composer.requestSubmit();
      }
    }
  });
  // Near the message limit (the last tenth), the composer counts the characters, and says when
  // the message is over (the server refuses it: MAX_MESSAGE_CHARS, playground/protocol.py).
  document.addEventListener("input", function (event) {
    var box = event.target;
    var count = document.getElementById("char-count");
    if (!count || !box.dataset || !box.dataset.maxChars) {
      return;
    }
    var limit = Number(box.dataset.maxChars);
    var length = box.value.length;
    count.hidden = length < limit * 0.9;
    count.textContent = length.toLocaleString("en") + " / " + limit.toLocaleString("en");
    count.classList.toggle("over", length > limit);
  });
  // Copy buttons. data-copy is "item" (the message's text, or a tool call's or output's),
  // "code" (the code block the button sits in) or the selector of a field whose value it copies.
  // Code blocks come from the server's Markdown, which carries no button: each gets one here.
  function copiedText(button) {
    var spec = button.dataset.copy;
    if (spec === "item") {
      // A message: its text as written (Markdown), kept in a <template>; a tool item: its <pre>.
      var item = button.closest(".item");
      var source = item && item.querySelector("template.source");
      var pre = item && item.querySelector("pre");
      return source ? source.content.textContent : pre ? pre.textContent : null;
    }
    if (spec === "code") {
      var code = button.parentElement.querySelector("pre");
      return code ? code.textContent : null;
    }
    var field = document.querySelector(spec);
    return field ? field.value : null;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    var text = button && copiedText(button);
    if (text === null || text === undefined) {
      return;
    }
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }, function () {
      var field = button.dataset.copy.charAt(0) === "#" && document.querySelector(button.dataset.copy);
      if (field) {
        field.select(); // no clipboard (an insecure origin): the user copies the selection
      }
      button.textContent = "Press Ctrl+C";
    });
  });
  function addCodeButtons() {
    document.querySelectorAll(".item .body pre").forEach(function (pre) {
      if (pre.parentElement.classList.contains("code-block")) {
        return;
      }
      var block = document.createElement("div");
      block.className = "code-block";
      pre.parentElement.insertBefore(block, pre);
      block.appendChild(pre);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.dataset.copy = "code";
      button.setAttribute("aria-label", "Copy this code");
      button.textContent = "Copy";
      block.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", addCodeButtons);
  document.addEventListener("htmx:wsAfterMessage", addCodeButtons);

  // Follow the stream: while the user sees the end of the transcript, new output keeps it in
  // view, just above the composer; once they scroll up to read, the page stays put and "Jump to
  // latest" appears. (The end of the transcript, not of the page: the settings column is longer.)
  var FOLLOW_SLACK_PX = 80;
  var following = true;
  function overshoot() {
    var transcript = document.getElementById("transcript");
    var bar = document.querySelector(".composer-bar");
    if (!transcript) {
      return 0;
    }
    var visible = window.innerHeight - (bar ? bar.offsetHeight : 0);
    return transcript.getBoundingClientRect().bottom - visible;
  }
  function atLatest() {
    return overshoot() <= FOLLOW_SLACK_PX;
  }
  function showJump(show) {
    var jump = document.getElementById("jump-latest");
    if (jump) {
      jump.hidden = !show;
    }
  }
  function toLatest() {
    var below = overshoot();
    if (below > 0) {
      window.scrollBy(0, below);
    }
  }
  window.addEventListener("scroll", function () {
    following = atLatest();
    if (following) {
      showJump(false);
    }
  }, { passive: true });
  document.addEventListener("htmx:wsBeforeMessage", function () {
    following = atLatest();
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (!document.getElementById("transcript")) {
      return;
    }
    if (following) {
      toLatest();
    } else {
      showJump(true);
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.id === "jump-latest") {
      following = true;
      showJump(false);
      toLatest();
    }
  });
  // On a narrow screen the sessions sidebar is a drawer, opened by the header's button and
  // closed by it, by Escape or by a click elsewhere (static/session.css).
  function drawer(open) {
    var toggle = document.getElementById("sessions-toggle");
    document.body.classList.toggle("sidebar-open", open);
    if (toggle) {
      toggle.setAttribute("aria-expanded", String(open));
    }
  }
  document.addEventListener("click", function (event) {
    var open = document.body.classList.contains("sidebar-open");
    if (event.target.closest && event.target.closest("#sessions-toggle")) {
      drawer(!open);
      if (!open) {
        var search = document.getElementById("session-search");
        if (search) {
          search.focus();
        }
      }
    } else if (open && !(event.target.closest && event.target.closest("#sessions-panel"))) {
      drawer(false);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) {
      drawer(false);
      document.getElementById("sessions-toggle").focus();
    }
  });
  // A new session's suggestions fill the composer; the user still sends.
  document.addEventListener("click", function (event) {
    var suggestion = event.target.closest && event.target.closest("button.suggestion");
    var box = suggestion && document.querySelector("#composer textarea");
    if (box) {
      box.value = suggestion.dataset.prompt;
      box.focus();
    }
  });
  // Edit a message in place: its editor (a ws-send form kept in a <template>) replaces its text
  // until sent or cancelled; the new branch then redraws the transcript.
  document.addEventListener("click", function (event) {
    var item = event.target.closest && event.target.closest(".item");
    if (!item) {
      return;
    }
    if (event.target.closest("button.edit")) {
      var open = item.querySelector(".edit-form");
      if (!open) {
        open = item.querySelector("template.editor").content.firstElementChild.cloneNode(true);
        open.querySelector("textarea").value = item.querySelector("template.source").content.textContent;
        item.querySelector(".body").after(open);
        item.classList.add("editing");
        htmx.process(open);
      }
      open.querySelector("textarea").focus();
    } else if (event.target.closest("button.cancel-edit")) {
      item.querySelector(".edit-form").remove();
      item.classList.remove("editing");
    }
  });
  // A compare page opened to run at once (the race's one click) starts when its socket opens.
  document.addEventListener("htmx:wsOpen", function () {
    var start = document.querySelector("form[data-autostart]");
    if (start) {
      start.removeAttribute("data-autostart");
      start.requestSubmit();
    }
  });
  document.addEventListener("htmx:wsConfigSend", function (event) {
    if (event.target.id === "composer") {
      clearNotice();
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    retries = 0; // the server answered: the next "come back" starts the backoff afresh
    received += 1;
    if (received % ACK_EVERY === 0) {
      // Sent at once, never queued: a count from an earlier connection would be wrong.
      event.detail.socketWrapper.sendImmediately(JSON.stringify({ action: "ack", received: received }));
    }
  });
})();
