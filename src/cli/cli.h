/* cli: the osbill command. Each subcommand is a function taking its own arguments. */
#ifndef OSBILL_CLI_H
#define OSBILL_CLI_H

int cli_init(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_login(int argc, char **argv);
/* Resource commands that call the platform API with the saved session. */
int cli_api(const char *group, int argc, char **argv);

#endif
