/* parse.c */
int parse(void) { return 0; }
