/**
 * A run's log in the main area: it follows the log while the run is queued or running.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ACTIVE_STATES, JobsError, readLog } from './api';
import { jobsIcon } from './icon';

class LogView extends Widget {
  constructor(readonly runId: number) {
    super();
    this.addClass('agp-jobs-log');
    this._status = document.createElement('div');
    this._status.className = 'agp-jobs-log-status';
    this._pre = document.createElement('pre');
    this.node.append(this._status, this._pre);
    void this._poll();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  private async _poll(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    let again = true;
    try {
      const chunk = await readLog(this.runId, this._offset);
      if (this.isDisposed) {
        return;
      }
      const atBottom = this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 20;
      if (chunk.text) {
        this._pre.append(document.createTextNode(chunk.text));
      }
      this._offset = chunk.nextOffset;
      again = ACTIVE_STATES.includes(chunk.state);
      this._status.textContent = again ? `Run ${this.runId} is ${chunk.state}; following its log…` : `Run ${this.runId}: ${chunk.state.replace('_', ' ')}`;
      this._status.dataset.state = chunk.state;
      if (atBottom) {
        this.node.scrollTop = this.node.scrollHeight;
      }
    } catch (error) {
      const message = error instanceof JobsError ? error.message : String(error);
      this._status.textContent = `The log could not be read: ${message}`;
      again = !(error instanceof JobsError) || error.status >= 500 || error.status === 0;
    }
    if (again) {
      this._timer = window.setTimeout(() => void this._poll(), 2000);
    }
  }

  private _offset = 0;
  private _timer = 0;
  private _status: HTMLDivElement;
  private _pre: HTMLPreElement;
}

export function logWidget(runId: number, jobName: string): MainAreaWidget<LogView> {
  const widget = new MainAreaWidget({ content: new LogView(runId) });
  widget.id = `agp-jobs-log-${runId}`;
  widget.title.label = `Log: ${jobName} #${runId}`;
  widget.title.icon = jobsIcon;
  widget.title.closable = true;
  return widget;
}
