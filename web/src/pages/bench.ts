import { h, replaceChildren } from '../dom';
import type { MountPage } from '../page';
export const mountBench: MountPage = (container) => { replaceChildren(container, h('h1', null, 'bench')); return () => undefined; };
