/**
 * The Jobs side panel: the workspace's recent runs, refreshed every few seconds while one is queued or running.
 */
import { Notification } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { ACTIVE_STATES, cancelRun, IRun, jobsPage, JobsError, listRuns, openOutput, runPage } from './api';
import { jobsIcon } from './icon';

export interface IPanelActions {
  showLog(run: IRun): void;
  openFile(path: string): void;
}

const ACTIVE_REFRESH_MS = 4000;
const IDLE_REFRESH_MS = 60000;

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }) : '–';
}

export function duration(run: IRun, now = Date.now()): string {
  if (!run.started_at) {
    return '–';
  }
  const end = run.ended_at ? Date.parse(run.ended_at) : now;
  let seconds = Math.max(0, Math.round((end - Date.parse(run.started_at)) / 1000));
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  return hours ? `${hours} h ${minutes} min` : minutes ? `${minutes} min ${seconds} s` : `${seconds} s`;
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.className = 'jp-Button jp-mod-minimal agp-jobs-action';
  b.textContent = label;
  b.title = title;
  b.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return b;
}

export class JobsPanel extends Widget {
  constructor(private readonly actions: IPanelActions) {
    super();
    this.id = 'agp-jobs-panel';
    this.addClass('agp-jobs-panel');
    this.title.icon = jobsIcon;
    this.title.caption = 'Jobs';
    const header = document.createElement('div');
    header.className = 'agp-jobs-header';
    const title = document.createElement('h2');
    title.textContent = 'Jobs';
    this._allJobs = document.createElement('a');
    this._allJobs.textContent = 'All jobs ↗';
    this._allJobs.target = '_blank';
    this._allJobs.rel = 'noopener';
    this._allJobs.style.display = 'none';
    const refresh = button('', 'Refresh', () => void this.refresh());
    refreshIcon.element({ container: refresh });
    header.append(title, this._allJobs, refresh);
    this._message = document.createElement('div');
    this._message.className = 'agp-jobs-message';
    this._list = document.createElement('ul');
    this._list.className = 'agp-jobs-list';
    this.node.append(header, this._message, this._list);
    void jobsPage().then(url => {
      if (url) {
        this._allJobs.href = url;
        this._allJobs.style.display = '';
      }
    });
  }

  /** Reads the runs again now, and schedules the next reading. */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    let active = false;
    try {
      const runs = await listRuns(50);
      this._message.textContent = runs.length ? '' : 'No runs yet: right-click a notebook or a .py file, "Run as job…".';
      this._render(runs);
      active = runs.some(r => ACTIVE_STATES.includes(r.state));
    } catch (error) {
      this._message.textContent = error instanceof JobsError ? error.message : String(error);
    }
    if (!this.isDisposed && (active || this.isVisible)) {
      this._timer = window.setTimeout(() => void this.refresh(), active ? ACTIVE_REFRESH_MS : IDLE_REFRESH_MS);
    }
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private _render(runs: IRun[]): void {
    const items = runs.map(run => this._item(run));
    this._list.replaceChildren(...items);
  }

  private _item(run: IRun): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'agp-jobs-run';
    li.dataset.runId = String(run.id);
    const top = document.createElement('div');
    top.className = 'agp-jobs-run-top';
    const name = document.createElement('span');
    name.className = 'agp-jobs-name';
    name.textContent = `${run.job_name} #${run.id}`;
    name.title = `${run.filename} (${run.kind}), ${run.trigger}`;
    const state = document.createElement('span');
    state.className = `agp-jobs-state agp-jobs-state-${run.state}`;
    state.textContent = run.state.replace('_', ' ');
    if (run.reason) {
      state.title = run.reason;
    }
    top.append(name, state);
    const meta = document.createElement('div');
    meta.className = 'agp-jobs-meta';
    meta.textContent = `${run.owner} · started ${when(run.started_at)} · ${duration(run)}`;
    const actions = document.createElement('div');
    actions.className = 'agp-jobs-actions';
    actions.append(button('Log', 'View the log', () => this.actions.showLog(run)));
    if (ACTIVE_STATES.includes(run.state)) {
      actions.append(button('Cancel', 'Cancel this run', () => void this._cancel(run)));
    }
    if (run.has_output) {
      actions.append(
        button('Open output', 'Copy the executed notebook into job-outputs/ and open it', () => void this._open(run))
      );
    }
    const page = runPage(run);
    if (page) {
      const link = document.createElement('a');
      link.className = 'agp-jobs-action';
      link.href = page;
      link.target = '_blank';
      link.rel = 'noopener';
      link.textContent = 'Page ↗';
      link.title = "The run's page in the workspace service";
      actions.append(link);
    }
    li.append(top, meta, actions);
    return li;
  }

  private async _cancel(run: IRun): Promise<void> {
    try {
      await cancelRun(run.id);
      Notification.info(`Run ${run.id} of "${run.job_name}" is being cancelled.`, { autoClose: 4000 });
    } catch (error) {
      Notification.error(`Run ${run.id} was not cancelled: ${(error as Error).message}`, { autoClose: 8000 });
    }
    void this.refresh();
  }

  private async _open(run: IRun): Promise<void> {
    try {
      this.actions.openFile(await openOutput(run.id));
    } catch (error) {
      Notification.error(`The output of run ${run.id} could not be opened: ${(error as Error).message}`, {
        autoClose: 8000
      });
    }
  }

  private _timer = 0;
  private _allJobs: HTMLAnchorElement;
  private _message: HTMLDivElement;
  private _list: HTMLUListElement;
}
