/**
 * "Run as job…": the dialog, and the submission with a notification that follows the run.
 */
import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

import { ACTIVE_STATES, getRun, IJobRequest, IRun, JobsError, submitJob } from './api';
import { parseParameters } from './parameters';

interface IFormValues {
  name: string;
  parameters: string;
  timeout: string;
  retries: string;
  schedule: string;
  timezone: string;
  runNow: boolean;
}

function browserTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function field(label: string, input: HTMLElement, help?: string): HTMLElement {
  const row = document.createElement('label');
  row.className = 'agp-jobs-field';
  const title = document.createElement('span');
  title.textContent = label;
  row.append(title, input);
  if (help) {
    const small = document.createElement('small');
    small.textContent = help;
    row.append(small);
  }
  return row;
}

function input(value: string, attributes: Record<string, string> = {}): HTMLInputElement {
  const element = document.createElement('input');
  element.className = 'jp-mod-styled';
  element.value = value;
  Object.entries(attributes).forEach(([k, v]) => element.setAttribute(k, v));
  return element;
}

/** The dialog's body: the form, read back by getValue(). */
class JobForm extends Widget implements Dialog.IBodyWidget<IFormValues> {
  constructor(path: string, values: IFormValues) {
    super();
    this.addClass('agp-jobs-form');
    const what = document.createElement('p');
    what.textContent = `Runs ${path} outside your server, as you, with the workspace's data.`;
    this._name = input(values.name, { maxlength: '200', 'aria-label': 'Job name' });
    this._parameters = document.createElement('textarea');
    this._parameters.className = 'jp-mod-styled';
    this._parameters.rows = 4;
    this._parameters.value = values.parameters;
    this._parameters.placeholder = 'day=2026-01-31\nlimit=100\n(or a JSON object)';
    this._timeout = input(values.timeout, { type: 'number', min: '1', 'aria-label': 'Timeout in seconds' });
    this._retries = input(values.retries, { type: 'number', min: '0', max: '10', 'aria-label': 'Retries' });
    this._schedule = input(values.schedule, { placeholder: '0 6 * * 1-5', 'aria-label': 'Schedule (cron)' });
    this._timezone = input(values.timezone, { 'aria-label': 'Time zone' });
    this._runNow = document.createElement('input');
    this._runNow.type = 'checkbox';
    this._runNow.checked = values.runNow;
    const runNow = document.createElement('label');
    runNow.className = 'agp-jobs-check';
    runNow.append(this._runNow, document.createTextNode(' Run now'));
    this.node.append(
      what,
      field('Name', this._name),
      field('Parameters', this._parameters, 'name=value lines, or a JSON object; they replace the notebook\'s "parameters" cell.'),
      field('Timeout (seconds)', this._timeout),
      field('Retries', this._retries, 'How many times a failed run is tried again.'),
      field('Schedule (cron, optional)', this._schedule, 'minute hour day month weekday; empty runs it on demand only.'),
      field('Time zone of the schedule', this._timezone),
      runNow
    );
  }

  getValue(): IFormValues {
    return {
      name: this._name.value,
      parameters: this._parameters.value,
      timeout: this._timeout.value,
      retries: this._retries.value,
      schedule: this._schedule.value,
      timezone: this._timezone.value,
      runNow: this._runNow.checked
    };
  }

  private _name: HTMLInputElement;
  private _parameters: HTMLTextAreaElement;
  private _timeout: HTMLInputElement;
  private _retries: HTMLInputElement;
  private _schedule: HTMLInputElement;
  private _timezone: HTMLInputElement;
  private _runNow: HTMLInputElement;
}

/** The request from the form's values, or an Error whose message says what to fix. */
export function toRequest(path: string, values: IFormValues): IJobRequest {
  const whole = (text: string, what: string, low: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < low) {
      throw new Error(`${what} is a whole number of at least ${low}.`);
    }
    return n;
  };
  const schedule = values.schedule.trim() || null;
  if (!schedule && !values.runNow) {
    throw new Error('Give a schedule, or tick "Run now": otherwise the job never runs.');
  }
  return {
    path,
    name: values.name.trim() || undefined,
    parameters: parseParameters(values.parameters),
    timeout_seconds: whole(values.timeout, 'The timeout', 1),
    max_retries: whole(values.retries, 'Retries', 0),
    schedule,
    timezone: values.timezone.trim() || 'UTC',
    run_now: values.runNow
  };
}

/** Asks for the job's settings (again, with what was typed, while they do not parse) and submits it. */
export async function runAsJob(path: string, onSubmitted: () => void, openPanel: () => void): Promise<void> {
  let values: IFormValues = {
    name: PathExt.basename(path, PathExt.extname(path)),
    parameters: '',
    timeout: '3600',
    retries: '0',
    schedule: '',
    timezone: browserTimezone(),
    runNow: true
  };
  for (;;) {
    const result = await showDialog({
      title: 'Run as job',
      body: new JobForm(path, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    values = result.value;
    let request: IJobRequest;
    try {
      request = toRequest(path, values);
    } catch (error) {
      await showErrorMessage('Run as job', (error as Error).message);
      continue;
    }
    try {
      const created = await submitJob(request);
      onSubmitted();
      announce(created.job.name, created.run, created.job.next_fire_at, openPanel);
    } catch (error) {
      const message = error instanceof JobsError ? error.message : String(error);
      Notification.error(`The job was not created: ${message}`, { autoClose: false });
    }
    return;
  }
}

const TYPES: Record<string, Notification.TypeOptions> = {
  queued: 'in-progress',
  running: 'in-progress',
  succeeded: 'success',
  failed: 'error',
  timed_out: 'error',
  cancelled: 'warning'
};

/** A notification that says the run's state, and follows it until the run ends. */
function announce(name: string, run: IRun | null, nextFireAt: string | null, openPanel: () => void): void {
  const actions = [{ label: 'Open Jobs panel', callback: openPanel }];
  if (!run) {
    const when = nextFireAt ? ` Next run: ${new Date(nextFireAt).toLocaleString()}.` : '';
    Notification.success(`Job "${name}" is scheduled.${when}`, { actions, autoClose: 8000 });
    return;
  }
  const text = (r: IRun) => `Job "${name}", run ${r.id}: ${r.state.replace('_', ' ')}${r.reason ? ` (${r.reason})` : ''}`;
  const id = Notification.emit(text(run), TYPES[run.state] || 'info', { actions, autoClose: false });
  let last = run.state as string;
  const follow = async () => {
    let current: IRun;
    try {
      current = await getRun(run.id);
    } catch {
      window.setTimeout(follow, 10000);
      return;
    }
    if (current.state !== last) {
      last = current.state;
      const ended = !ACTIVE_STATES.includes(current.state);
      Notification.update({
        id,
        message: text(current),
        type: TYPES[current.state] || 'info',
        actions,
        autoClose: ended ? 10000 : false
      });
    }
    if (ACTIVE_STATES.includes(current.state)) {
      window.setTimeout(follow, 4000);
    }
  };
  window.setTimeout(follow, 3000);
}
