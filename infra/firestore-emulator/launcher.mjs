// Starts the in-memory Firestore emulator (gRPC google.firestore.v1.Firestore, plain HTTP/2).
// Port: --port N, else $FIRESTORE_EMULATOR_PORT, else 8080. Data lives in memory only.
// Note: FirestoreServer.start() always binds 0.0.0.0 (the package offers no host option).
import { parseArgs } from "node:util";
import { FirestoreServer, FirestoreState } from "@firestore-emulator/server";

// Firestore honours a write's `current_document.update_time` precondition (FAILED_PRECONDITION
// when the document changed since it was read); this emulator checks only `exists`. Brain's
// projection writes rely on it to stay monotonic, so the launcher adds it. The package does not
// export its error class (only errors of that class reach the client with their gRPC code), so
// it is taken from an error the emulator raises itself.
const FAILED_PRECONDITION = 9;
const EmulatorError = (() => {
  try {
    new FirestoreState().writeV1Document(new Date(), {
      has_delete: true,
      delete: "projects/probe/databases/(default)/documents/probe/probe",
      has_current_document: true,
      current_document: { has_exists: true, exists: true, has_update_time: false },
    });
  } catch (err) {
    return err.constructor;
  }
  throw new Error("firestore-emulator: could not find the emulator's error class");
})();
const writeV1Document = FirestoreState.prototype.writeV1Document;
FirestoreState.prototype.writeV1Document = function (date, write) {
  if (write.has_current_document && write.current_document.has_update_time) {
    const path = write.has_delete ? write.delete : write.update.name;
    const document = this.getDocument(path);
    const want = write.current_document.update_time;
    const wantMs = Number(want.seconds) * 1000 + Math.floor(Number(want.nanos) / 1e6);
    if (!document.metadata.hasExist || document.metadata.updatedAt.getTime() !== wantMs) {
      throw new EmulatorError(FAILED_PRECONDITION, `the stored version of ${path} does not match the required base version`);
    }
  }
  return writeV1Document.call(this, date, write);
};

// Adding a document to a collection copies and re-freezes the collection's whole document map
// (immer), so creating the N-th document costs O(N): about 1 ms per create at 2,000 documents
// against 0.03 ms per update, which real Firestore does not have and which made a burst of new
// applications look like a projection-writer stall in the bench. The launcher keeps the map
// mutable instead; nothing else in the package relies on its identity (it is only looked up and
// iterated).
const probe = new FirestoreState().getDocument("projects/probe/databases/(default)/documents/probe/probe");
const FirestoreStateCollection = probe.parent.constructor;
const FirestoreStateDocument = probe.constructor;
FirestoreStateCollection.prototype.getDocument = function (documentName) {
  let document = Object.hasOwn(this.documents, documentName) ? this.documents[documentName] : undefined;
  if (!document) {
    if (Object.isFrozen(this.documents)) this.documents = { ...this.documents };
    document = new FirestoreStateDocument(this.emitter, this.database, this, documentName, {}, {});
    this.documents[documentName] = document;
  }
  return document;
};

// Collection-group queries (`from: [{collection_id, all_descendants: true}]`, what a listener of
// every application's `tasks` needs) are not in the package: it queries one collection only. The
// launcher runs the package's own query on every collection of that name under the parent and
// joins the results (ordering and limits apply per collection; Brain's listeners use neither).
const v1Query = FirestoreState.prototype.v1Query;
FirestoreState.prototype.v1Query = function (parent, query) {
  const from = query.from?.[0];
  if (!from?.all_descendants) return v1Query.call(this, parent, query);
  const [, projectName, , databaseName, , ...under] = parent.split("/");
  let holder = this.getProject(projectName).getDatabase(databaseName);
  for (let i = 0; i + 1 < under.length; i += 2) {
    holder = holder.getCollection(under[i]).getDocument(under[i + 1]);
  }
  const docs = [];
  const visit = (node, path) => {
    for (const [name, collection] of Object.entries(node.collections ?? {})) {
      if (name === from.collection_id) docs.push(...v1Query.call(this, path, query));
      for (const [id, document] of Object.entries(collection.documents ?? {})) visit(document, `${path}/${name}/${id}`);
    }
  };
  from.all_descendants = false;
  try {
    visit(holder, parent);
  } finally {
    from.all_descendants = true;
  }
  return docs;
};

const { values } = parseArgs({ options: { port: { type: "string" } } });
const raw = values.port ?? process.env.FIRESTORE_EMULATOR_PORT ?? "8080";
const port = Number(raw);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`firestore-emulator: invalid port ${JSON.stringify(raw)}`);
  process.exit(2);
}

const server = new FirestoreServer();
try {
  await server.start(port);
} catch (err) {
  console.error(`firestore-emulator: cannot listen on port ${port}: ${err.message}`);
  process.exit(1);
}
console.log(`firestore-emulator: listening on 0.0.0.0:${port} (pid ${process.pid})`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    server.stop();
    console.log(`firestore-emulator: ${signal} received, stopped`);
    process.exit(0);
  });
}
