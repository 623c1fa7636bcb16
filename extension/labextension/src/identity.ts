/**
 * The workspace identity in JupyterLab's top bar: product, workspace, the user's role (a viewer sees "read-only"),
 * a link back to the hub's home and a switcher to the user's other workspaces. Data: `/agp/workspaces`
 * (extension/identity.py).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import { agpJson, AgpError, el } from './request';

const RETRIES_MS = [2000, 5000, 10000, 30000, 60000];

export interface IWorkspaceEntry {
  slug: string;
  display_name: string;
  role: string;
  read_only: boolean;
  state: string;
  current: boolean;
  running: boolean;
  url: string;
}

export interface IIdentity {
  user: string;
  admin: boolean;
  workspace: string;
  display_name: string;
  role: string | null;
  read_only: boolean;
  hub_home: string;
  workspaces: IWorkspaceEntry[];
}

const ROLE_TITLES: Record<string, string> = {
  owner: 'Owner: you manage this workspace and its members',
  editor: 'Editor: you read and write the workspace’s tables and files',
  viewer: 'Viewer: you read the workspace’s tables; writes are refused',
  admin: 'Platform admin'
};

export class IdentityBar extends Widget {
  constructor() {
    super();
    this.id = 'agp-identity';
    this.addClass('agp-identity');
    this._menu.className = 'agp-identity-menu';
    this._menu.hidden = true;
    document.addEventListener('click', this._closeOutside, true);
    document.addEventListener('keydown', this._closeOnEscape);
  }

  /** Reads the identity; while the workspace service does not answer (it restarts, say), tries again later. */
  async load(attempt = 0): Promise<void> {
    try {
      this._render(await agpJson<IIdentity>('workspaces'));
      this.node.title = '';
    } catch (error) {
      if (!this.node.querySelector('.agp-identity-workspace')) {
        this.node.replaceChildren(el('span', 'agp-identity-product', 'Antigravity'));
      }
      this.node.title = `The workspace could not be read: ${(error as Error).message}`;
      if (!this.isDisposed && attempt < RETRIES_MS.length && (error as AgpError).status !== 403) {
        window.setTimeout(() => void this.load(attempt + 1), RETRIES_MS[attempt]);
      }
    }
  }

  dispose(): void {
    document.removeEventListener('click', this._closeOutside, true);
    document.removeEventListener('keydown', this._closeOnEscape);
    super.dispose();
  }

  private _render(id: IIdentity): void {
    const home = el('a', 'agp-identity-home', 'Antigravity');
    home.href = id.hub_home;
    home.title = 'Back to the hub: your workspaces';
    const name = el('span', 'agp-identity-workspace', id.display_name || id.workspace);
    name.title = `Workspace ${id.workspace}`;
    const parts: HTMLElement[] = [home, el('span', 'agp-identity-sep', '/'), name];
    if (id.role) {
      const role = el('span', `agp-identity-role agp-identity-role-${id.role}`, id.role);
      role.title = ROLE_TITLES[id.role] || id.role;
      parts.push(role);
    }
    if (id.read_only) {
      const ro = el('span', 'agp-identity-readonly', 'read-only');
      ro.title = 'You are a viewer of this workspace: you can read its tables, not change them. An owner can change your role.';
      parts.push(ro);
    }
    const others = id.workspaces.filter(w => !w.current);
    const switcher = el('button', 'agp-identity-switcher jp-Button jp-mod-minimal', 'Switch workspace ▾');
    switcher.title = others.length ? 'Your other workspaces' : 'You are a member of no other workspace';
    switcher.disabled = !others.length;
    switcher.setAttribute('aria-haspopup', 'true');
    switcher.addEventListener('click', () => {
      this._menu.hidden = !this._menu.hidden;
    });
    this._menu.replaceChildren(
      ...others.map(w => {
        const li = el('li');
        const ready = w.state === 'ready';
        const link = el(ready ? 'a' : 'span', 'agp-identity-item');
        link.dataset.slug = w.slug;
        link.append(el('span', 'agp-identity-item-name', w.display_name), el('span', 'agp-identity-item-role', w.role));
        const status = ready ? (w.running ? 'running' : 'start') : w.state;
        link.append(el('span', `agp-identity-item-state agp-identity-item-${status}`, status));
        if (link instanceof HTMLAnchorElement) {
          link.href = w.url;
          link.title = w.running ? `Open your server of ${w.display_name}` : `Start your server of ${w.display_name}`;
        } else {
          link.title = `${w.display_name} is ${w.state}: its servers do not start`;
        }
        li.append(link);
        return li;
      })
    );
    const wrap = el('span', 'agp-identity-switch');
    wrap.append(switcher, this._menu);
    parts.push(wrap);
    this.node.replaceChildren(...parts);
    this.node.dataset.workspace = id.workspace;
    this.node.dataset.role = id.role || '';
  }

  private _closeOutside = (event: MouseEvent) => {
    if (!this._menu.hidden && !this.node.contains(event.target as Node)) {
      this._menu.hidden = true;
    }
  };

  private _closeOnEscape = (event: KeyboardEvent) => {
    if (event.key === 'Escape') {
      this._menu.hidden = true;
    }
  };

  private _menu = el('ul');
}

export const identityPlugin: JupyterFrontEndPlugin<void> = {
  id: '@agp/labextension:identity',
  description: 'The workspace, your role in it, a link to the hub and a switcher to your other workspaces.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const bar = new IdentityBar();
    app.shell.add(bar, 'top', { rank: 50 });
    void bar.load();
  }
};
