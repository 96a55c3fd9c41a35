// The floor of every whole-process figure in scripts/bench: a program that does
// nothing, linked statically as kosli-cred is. Whatever `kosli-cred token` costs
// above this is ours; this much is the machine's (exec, the C library's start-up,
// exit and wait).
int main() { return 0; }
