// video-gen console: the few things a server cannot do for the viewer. No framework, no build.
"use strict";
(function () {
  // Times arrive in UTC (<time datetime="...Z">); show them in the viewer's time zone.
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) el.textContent = format.format(moment);
  }
  for (const el of document.querySelectorAll("[data-now]")) el.textContent = format.format(new Date());

  // Filters' "from"/"until" fields are local times: tell the server which zone they are in.
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  for (const el of document.querySelectorAll("input[data-timezone]")) el.value = zone;

  // `video-gen serve` prints /console/sign-in#token=...: a fragment never reaches the server or
  // its logs. Post it once, and drop it from the address bar and the history.
  const form = document.getElementById("sign-in");
  if (form && location.hash.startsWith("#token=")) {
    form.elements.token.value = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname + location.search);
    form.submit();
  }
})();
