import { h, replaceChildren } from '../dom';
import type { MountPage } from '../page';
export const mountMaps: MountPage = (container) => { replaceChildren(container, h('h1', null, 'maps')); return () => undefined; };
