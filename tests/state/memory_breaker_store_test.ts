import { createMemoryBreakerStore } from "../../src/breaker/store.ts";
import { runBreakerStoreContract } from "../contract/breaker_store.ts";

runBreakerStoreContract("memory", (timing) => createMemoryBreakerStore(timing));
