// The dashboard shell: login, header (who you are, live status), navigation, and a tiny
// router on location.hash that mounts one page at a time.
import './style.css';
import { clearSession, describeError, get, getToken, logout, setUnauthenticatedHandler } from './api';
import type { User } from './api-types';
import { h, replaceChildren } from './dom';
import type { MountPage, Unmount } from './page';
import { renderLogin } from './pages/login';
import { mountOverview } from './pages/overview';
import { mountServices } from './pages/services';
import { mountPrograms } from './pages/programs';
import { mountMaps } from './pages/maps';
import { mountTrace } from './pages/trace';
import { mountBench } from './pages/bench';
import { mountCluster } from './pages/cluster';
import { store } from './store';

interface Route { path: string; label: string; mount: MountPage }
const ROUTES: Route[] = [
  { path: 'overview', label: 'Overview', mount: mountOverview },
  { path: 'services', label: 'Services', mount: mountServices },
  { path: 'programs', label: 'Programs', mount: mountPrograms },
  { path: 'maps', label: 'Maps', mount: mountMaps },
  { path: 'trace', label: 'Trace', mount: mountTrace },
  { path: 'cluster', label: 'Cluster', mount: mountCluster },
  { path: 'bench', label: 'Benchmarks', mount: mountBench },
];

const app = document.getElementById('app') as HTMLElement;
let unmountPage: Unmount | null = null;
let stopShell: (() => void) | null = null;

function currentRoute(): Route {
  const path = location.hash.replace(/^#\/?/, '').split('?')[0];
  return ROUTES.find((r) => r.path === path) ?? ROUTES[0];
}

function showLogin(message?: string): void {
  unmountPage?.();
  unmountPage = null;
  stopShell?.();
  stopShell = null;
  store.stop();
  document.title = 'Log in · xdplb';
  replaceChildren(app, renderLogin((user) => void showShell(user), message));
}

async function showShell(user: User): Promise<void> {
  const isAdmin = user.role === 'admin';
  const liveDot = h('span', { class: 'live', 'data-status': store.status, role: 'status' }, 'connecting');
  const navLinks = ROUTES.map((r) => h('a', { href: `#/${r.path}`, 'data-route': r.path }, r.label));
  const content = h('main', { id: 'content', tabindex: '-1' });
  const banner = h('div', { class: 'banner banner-error shell-banner', role: 'alert', hidden: true });
  const logoutButton = h('button', { type: 'button', class: 'btn btn-small', onclick: () => {
    void logout().then(() => { location.hash = ''; showLogin(); });
  } }, 'Log out');
  const header = h('header', { class: 'topbar' },
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '◆'), 'xdplb'),
    h('nav', { 'aria-label': 'Pages' }, navLinks),
    h('div', { class: 'whoami' }, liveDot,
      h('span', { class: 'user', 'data-testid': 'whoami' }, h('strong', null, user.name), ' · ',
        h('span', { class: `role role-${user.role}` }, isAdmin ? 'admin: can change' : 'viewer: read-only')),
      logoutButton));
  replaceChildren(app, header, banner, content);

  const renderStatus = () => {
    liveDot.dataset.status = store.status;
    liveDot.textContent = store.status === 'live' ? 'live' : store.status === 'connecting' ? 'connecting' : 'reconnecting';
  };
  const offStatus = store.on('status', renderStatus);
  renderStatus();

  let mountedPath: string | null = null;
  const route = () => {
    const r = currentRoute();
    if (r.path === mountedPath) return; // e.g. the hashchange that follows the login redirect
    mountedPath = r.path;
    unmountPage?.();
    replaceChildren(content);
    for (const link of navLinks) {
      if (link.dataset.route === r.path) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${r.label} · xdplb`;
    unmountPage = r.mount(content, { user, isAdmin });
  };
  window.addEventListener('hashchange', route);
  stopShell = () => { window.removeEventListener('hashchange', route); offStatus(); };

  route();
  try {
    await store.start();
  } catch (err) {
    banner.hidden = false;
    banner.textContent = `Could not load live data: ${describeError(err)}`;
  }
}

async function boot(): Promise<void> {
  setUnauthenticatedHandler(() => {
    clearSession();
    showLogin('Your session ended. Please log in again.');
  });
  const token = getToken();
  if (!token) return showLogin();
  try {
    const user = await get<User>('/whoami');
    await showShell(user);
  } catch {
    clearSession();
    showLogin();
  }
}

void boot();
