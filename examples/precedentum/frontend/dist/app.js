// Precedentum's single-page frontend: client-side routes over the JSON API, no build step needed.
const app = document.getElementById("app");
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const api = (path) => fetch(`/api/${path}`).then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); });

const routes = [
  [/^\/$/, async () => { const d = await api("courts/"); return `<h1>Courts</h1><ul>${d.results.map((c) => `<li>${esc(c.name)} (${esc(c.circuit)})</li>`).join("")}</ul>`; }],
  [/^\/judges$/, async () => { const d = await api("judges/"); return `<h1>Judges</h1><ul>${d.results.map((j) => `<li><a href="/judges/${j.id}" data-link>${esc(j.name)}</a> — ${esc(j.role)}, ${esc(j.division)}</li>`).join("")}</ul>`; }],
  [/^\/judges\/(\d+)$/, async (id) => { const j = await api(`judges/${id}/`); return `<h1>${esc(j.name)}</h1><p>${esc(j.role)}, ${esc(j.division)} division</p><h2>Recent cases</h2><ul>${j.recent_cases.map((c) => `<li>${esc(c.number)} ${esc(c.title)}</li>`).join("")}</ul>`; }],
  [/^\/cases$/, async () => { const d = await api("cases/"); return `<h1>Cases (${d.count})</h1><ul>${d.results.map((c) => `<li>${esc(c.number)} ${esc(c.title)} — ${esc(c.nature_of_suit)}</li>`).join("")}</ul>`; }],
];

async function render() {
  const route = routes.find(([pattern]) => pattern.test(location.pathname));
  if (!route) { app.innerHTML = "<h1>Not found</h1>"; return; }
  try { app.innerHTML = await route[1](...location.pathname.match(route[0]).slice(1)); }
  catch (e) { app.innerHTML = `<h1>Unavailable</h1><p>${esc(e.message)}</p>`; }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  render();
});
window.addEventListener("popstate", render);
render();
