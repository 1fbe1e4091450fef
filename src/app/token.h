/*
 * token.h - `lastseen token create|list|revoke` (token.c).
 */
#ifndef LS_TOKEN_H
#define LS_TOKEN_H

/* argv[0] is "token".  Returns the exit code: 0 done, 1 failed, 2 bad arguments. */
int ls_token_main(int argc, char **argv);

#endif
