import { h, replaceChildren } from '../dom';
import type { MountPage } from '../page';
export const mountPrograms: MountPage = (container) => { replaceChildren(container, h('h1', null, 'programs')); return () => undefined; };
