// Confirmation dialogs on the native <dialog>: modal, focus-trapped, Esc closes it.
// The action runs inside the dialog so that an API refusal is shown where it was asked.
import { ApiError, describeError } from './api';
import { focusByKey, h } from './dom';

export interface DialogField {
  name: string; label: string; type?: 'text' | 'number'; value?: string;
  min?: number; max?: number; required?: boolean; placeholder?: string; hint?: string;
  /** A choice instead of a text box: a <select> with these values (the first is the default unless `value`). */
  options?: string[];
}

export interface ConfirmOptions {
  title: string;
  body: Array<Node | string>;
  confirmLabel: string;
  danger?: boolean;
  fields?: DialogField[];
  /** Runs on confirm with the field values; a throw keeps the dialog open with the message. */
  action: (values: Record<string, string>) => Promise<unknown>;
}

/** Opens a modal confirmation; resolves true when the action succeeded, false on cancel. */
export function confirmDialog(opts: ConfirmOptions): Promise<boolean> {
  return new Promise((resolve) => {
    // Where focus goes back to: the opener, or its re-rendered twin if the list changed meanwhile.
    const opener = document.activeElement as HTMLElement | null;
    const openerKey = opener?.dataset?.focusKey;
    const error = h('p', { class: 'dialog-error', id: 'dialog-error', role: 'alert' });
    const inputs = (opts.fields ?? []).map((field) => {
      if (field.options) {
        const input: HTMLInputElement | HTMLSelectElement = h('select', { name: field.name, id: `dlg-${field.name}`, required: field.required },
          field.options.map((o) => h('option', { value: o }, o)));
        if (field.value !== undefined) input.value = field.value;
        return { field, input };
      }
      const input: HTMLInputElement | HTMLSelectElement = h('input', {
        name: field.name, id: `dlg-${field.name}`, type: field.type ?? 'text', value: field.value ?? '',
        min: field.min, max: field.max, required: field.required, placeholder: field.placeholder,
        autocomplete: 'off',
      });
      return { field, input };
    });
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: `btn ${opts.danger ? 'btn-danger' : 'btn-primary'}` }, opts.confirmLabel);
    const form = h('form', { method: 'dialog' },
      h('h2', null, opts.title),
      h('div', { class: 'dialog-body' }, opts.body),
      inputs.map(({ field, input }) => h('div', { class: 'field' },
        h('label', { for: input.id }, field.label), input,
        field.hint ? h('small', { id: `dlg-${field.name}-hint` }, field.hint) : null)),
      error,
      h('div', { class: 'dialog-actions' }, cancel, confirm));
    const dialog = h('dialog', { class: 'dialog', 'aria-label': opts.title }, form);
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      dialog.close();
      dialog.remove();
      if (opener?.isConnected) opener.focus();
      else focusByKey(document, openerKey);
      resolve(ok);
    };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('close', () => finish(false)); // Esc
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const values: Record<string, string> = {};
      for (const { field, input } of inputs) values[field.name] = input.value.trim();
      confirm.disabled = true;
      error.textContent = '';
      for (const { input } of inputs) input.removeAttribute('aria-invalid');
      opts.action(values).then(() => finish(true), (err: unknown) => {
        confirm.disabled = false;
        error.textContent = describeError(err);
        // The API names the wrong field as a JSON pointer ("/address", "/backends/1/address"):
        // mark and focus it (or the form field it came from).
        const path = err instanceof ApiError && err.field ? err.field.split('/').filter(Boolean) : [];
        const wrong = (inputs.find(({ field }) => field.name === path[path.length - 1])
          ?? inputs.find(({ field }) => field.name === path[0]))?.input;
        if (wrong) {
          wrong.setAttribute('aria-invalid', 'true');
          wrong.setAttribute('aria-describedby', 'dialog-error');
          wrong.focus();
        }
      });
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    (inputs[0]?.input ?? cancel).focus();
  });
}
