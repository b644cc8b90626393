/* util.c */
int util(void) { return 0; }
