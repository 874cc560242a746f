/* infer.c — placeholder until the endpoint client lands. */
