// The one listener for the server's `comfyui_remote.task` events, registered when the extension
// is set up — not when the tab opens — so the frontend knows the message type from the first
// event on (1.5x logs "Unknown message type" for an event nobody listens to) and the store stays
// current while the panel is closed. Events merge into `store.state` through the reducer; a
// mounted panel subscribes to be told what changed.

import { initialState, reduce } from "./state.js";

export const TASK_EVENT = "comfyui_remote.task";

/**
 * api: ComfyUI's api (addEventListener/removeEventListener); store: a plain object whose `state`
 * holds the panel state. Returns {subscribe(fn(before, after)) → unsubscribe, close()}.
 */
export function createTaskFeed(api, store) {
  if (!store.state) store.state = initialState();
  const subscribers = new Set();
  const onTask = (event) => {
    const detail = event ? event.detail : null;
    const before = store.state;
    for (const task of Array.isArray(detail) ? detail : [detail]) {
      store.state = reduce(store.state, { type: "task", task });
    }
    if (store.state === before) return;
    for (const fn of [...subscribers]) fn(before, store.state);
  };
  api.addEventListener(TASK_EVENT, onTask);
  return {
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
    close() {
      api.removeEventListener(TASK_EVENT, onTask);
      subscribers.clear();
    },
  };
}
