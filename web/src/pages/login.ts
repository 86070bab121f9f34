// Login: username + password -> session token (kept in sessionStorage for this tab only).
import { ApiError, describeError, login } from '../api';
import type { User } from '../api-types';
import { h } from '../dom';

export function renderLogin(onLoggedIn: (user: User) => void, message?: string): HTMLElement {
  const username = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Log in');
  const error = h('p', { class: 'login-error', role: 'alert' }, message ?? '');
  const form = h('form', { class: 'login-card', 'aria-label': 'Log in' },
    h('div', { class: 'login-brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '◆'), 'xdplb'),
    h('p', { class: 'muted' }, 'XDP load balancer — live dashboard'),
    h('div', { class: 'field' }, h('label', { for: username.id }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: password.id }, 'Password'), password),
    error, submit,
    h('p', { class: 'muted small' }, 'Viewers see everything; administrators can also change services and settings.'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    login(username.value.trim(), password.value).then((user) => {
      if (!location.hash || location.hash === '#/') location.hash = '#/overview';
      onLoggedIn(user);
    }, (err: unknown) => {
      submit.disabled = false;
      error.textContent = err instanceof ApiError && err.status === 401
        ? 'Wrong username or password.'
        : `Login failed: ${describeError(err)}`;
      password.select();
    });
  });
  queueMicrotask(() => username.focus());
  return h('div', { class: 'login-page' }, form);
}
