// Post Microsoft's answer again from Foyer's own origin, so the browser's session cookie goes with it.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("microsoft-return");
  if (form) form.submit();
});
