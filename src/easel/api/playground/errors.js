// The error box: OpenAI's message as it is, what else its envelope says, and for a 429 or a 503
// the countdown of its retry headers, during which the page does not send again.

import { $, el } from "./dom.js";

let countdown = null;
let changed = () => {};

/** Call `fn` whenever a countdown starts or ends. */
export function whenRetryChanges(fn) {
  changed = fn;
}

/** Whether a refusal's retry time has not passed yet. */
export const retryBlocked = () => countdown !== null;

export function showError(error) {
  clearError();
  const box = $("error");
  const meta = [error.status && `HTTP ${error.status}`, error.type, error.code, error.param && `param: ${error.param}`];
  box.append(el("p", { className: "message", textContent: error.message }));
  const details = meta.filter(Boolean).join(" · ");
  if (details) box.append(el("p", { className: "meta", textContent: details }));
  box.hidden = false;
  if ((error.status === 429 || error.status === 503) && error.retryAfterMs) {
    const retry = el("p", { className: "retry" });
    box.append(retry);
    const until = Date.now() + error.retryAfterMs;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left > 0) {
        retry.textContent = `Retry in ${left} s`;
        return;
      }
      retry.textContent = "You can retry now.";
      stop();
    };
    tick();
    countdown = setInterval(tick, 250);
    changed();
  }
}

function stop() {
  if (countdown === null) return;
  clearInterval(countdown);
  countdown = null;
  changed();
}

export function clearError() {
  stop();
  $("error").replaceChildren();
  $("error").hidden = true;
}
