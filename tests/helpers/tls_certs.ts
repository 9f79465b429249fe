/**
 * A throwaway CA and a certificate for 127.0.0.1 signed by it (`openssl`), for TLS tests:
 * a daemon trusts the CA through DENO_CERT.
 * @module
 */

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!r.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(r.stderr)}`);
}

/** `ca.pem`, `server.pem` and `server.key` in `dir`. */
export async function certificates(dir: string): Promise<void> {
  await openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem"]
      .concat(["-days", "2", "-subj", "/CN=pilotfish-test-ca"]),
    dir,
  );
  await openssl(
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"]
      .concat(["-subj", "/CN=127.0.0.1"]),
    dir,
  );
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
      .concat(["-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]),
    dir,
  );
}
