// Results kept in this browser's IndexedDB: each entry is the whole request (its files as blobs)
// and what came back, so that it survives a reload and can be sent again.

const DB = "easel-playground";
const STORE = "history";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = act(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keep an entry: {created, request, results: [{blob, seed, revised_prompt}], ...}; its new id. */
export const add = (entry) => run("readwrite", (s) => s.add(entry));

/** Every entry, newest first. */
export const all = async () => (await run("readonly", (s) => s.getAll())).reverse();

export const get = (id) => run("readonly", (s) => s.get(id));

export const remove = (id) => run("readwrite", (s) => s.delete(id));

export const clear = () => run("readwrite", (s) => s.clear());
