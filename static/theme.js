// The colour theme: the system's (no data-theme on <html>), light or dark. Loaded without
// defer, so the saved choice applies before the page paints; the header's button cycles it.
(function () {
  "use strict";
  var KEY = "playground-theme";
  var THEMES = ["", "light", "dark"];
  var NAMES = { "": "system", light: "light", dark: "dark" };
  var theme = "";
  try {
    theme = localStorage.getItem(KEY) || "";
  } catch (error) {
    theme = ""; // storage refused (a private window's policy): the system's theme
  }
  if (THEMES.indexOf(theme) < 0) {
    theme = "";
  }
  function apply() {
    var root = document.documentElement;
    if (theme) {
      root.dataset.theme = theme;
    } else {
      delete root.dataset.theme;
    }
    var button = document.getElementById("theme");
    if (button) {
      button.textContent = "Theme: " + NAMES[theme];
    }
  }
  apply();
  document.addEventListener("DOMContentLoaded", apply);
  document.addEventListener("click", function (event) {
    if (event.target.id !== "theme") {
      return;
    }
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    try {
      localStorage.setItem(KEY, theme);
    } catch (error) {
      // not kept: this page still switches
    }
    apply();
  });
})();
