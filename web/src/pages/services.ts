import { h, replaceChildren } from '../dom';
import type { MountPage } from '../page';
export const mountServices: MountPage = (container) => { replaceChildren(container, h('h1', null, 'services')); return () => undefined; };
