// The same job as one cold mdefn alerts invocation, with Microsoft's official
// Node SDKs: the client secret from Key Vault with the managed identity
// (IDENTITY_ENDPOINT, IDENTITY_HEADER), a token from Entra ID with it, one
// Defender call (GET /api/alerts?$top=1). make bench (cmd/mdefnbench) times
// it from exec to exit against the same simulator, with the same MDE_*
// settings; NODE_EXTRA_CA_CERTS trusts the simulator's CA. Prints the
// Defender status; exits non-zero on any failure.
import { ManagedIdentityCredential, ClientSecretCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const vault = new SecretClient(env("MDE_KEYVAULT_URL"), new ManagedIdentityCredential(), {
  disableChallengeResourceVerification: true,
});
const secret = (await vault.getSecret(env("MDE_SECRET_NAME"))).value;
const cred = new ClientSecretCredential(env("MDE_TENANT_ID"), env("MDE_CLIENT_ID"), secret, {
  authorityHost: env("MDE_AUTHORITY_URL"),
  disableInstanceDiscovery: true,
});
const token = await cred.getToken(env("MDE_TOKEN_AUDIENCE").replace(/\/$/, "") + "/.default");
const res = await fetch(env("MDE_API_URL") + "/api/alerts?$top=1", {
  headers: { Authorization: "Bearer " + token.token },
});
await res.arrayBuffer();
console.log(res.status);
process.exit(res.status === 200 ? 0 : 1);
