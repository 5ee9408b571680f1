// bin/dadi starts the commands that open no TLS connection themselves without $NODE_EXTRA_CA_CERTS
// (node parses that file as it starts: 40 ms and more for a system bundle) and keeps its value in
// $DADI_NODE_EXTRA_CA_CERTS, for the processes they start that do (the daemon, an in-process pull).

/** `env` with $NODE_EXTRA_CA_CERTS given back; undefined if bin/dadi did not take it out. */
export function withExtraCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv | undefined {
  const { DADI_NODE_EXTRA_CA_CERTS: ca, ...rest } = env;
  return ca === undefined ? undefined : { ...rest, NODE_EXTRA_CA_CERTS: ca };
}
