/* osbill: one binary for the platform (init, serve) and its command-line client. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: osbill COMMAND [options]\n"
        "\n"
        "platform:\n"
        "  init  --data DIR [--db URL] [--email E] [--password P] [--output json]\n"
        "                           create a data directory and the operator account\n"
        "  serve --data DIR [--listen 127.0.0.1:8080] [--db URL] [--public-url URL]\n"
        "        (--db: postgres://... or sqlite:PATH; default DIR/osbill.db)\n"
        "        [--log-level debug|info|warn|error] [--access-log]\n"
        "                           run the platform\n"
        "client (after login; every command takes --output json):\n"
        "  login --endpoint URL --apikey KEY\n"
        "  account   create --name N --kind provider|consumer [--owner-email E --owner-name N\n"
        "                   --owner-password P] | list | get ID |\n"
        "            suspend ID | reactivate ID   (operator: disables or enables its instances)\n"
        "  user      create --account ID --email E --name N --password P | list --account ID\n"
        "  serviceid create --account ID --name N [--description D] | list --account ID |\n"
        "            get ID | delete ID\n"
        "  apikey    create --name N [--iam-id ID] [--account ID] | list [--iam-id ID] |\n"
        "            get ID | lock ID | unlock ID | delete ID\n"
        "  policy    create --account ID --subject IAM_ID --roles R1,R2 [--service NAME]\n"
        "            [--resource ID] | list --account ID | delete ID\n"
        "  client    create --account ID --name N [--redirect-uri URI]... [--public]\n"
        "            [--service NAME]\n"
        "  keys      rotate\n"
        "  offering  create | list | get | steps | update | delete | iam | redirect-uris |\n"
        "            visibility | allow | disallow | allowlist | listing | publication |\n"
        "            reviews | catalog-json | search   (osbill offering --help)\n"
        "  instance  create | list | get | update | delete | wait   (osbill instance --help)\n"
        "  key       create | list | get | delete   resource keys: an instance's credentials\n"
        "  reclamation list | restore | reclaim   deleted instances in their reclamation period\n"
        "  usage     submit --offering ID -f records.json   (a provider's usage records)\n"
        "            list [--instance ID] [--month YYYY-MM] ...   (accepted records)\n"
        "  billing   usage MONTH [--account ID] | period MONTH | close MONTH [--force]\n"
        "  invoice   list [--month M] [--account ID] | show ID [--format csv|html] |\n"
        "            void ID --reason TEXT\n"
        "  statement list [--month M] | show ID   (a provider's revenue statements)\n"
        "  case      create --severity N --subject S --description D [--instance ID] | list |\n"
        "            show ID | update ID [--comment C] [--status S] |\n"
        "            webhook set|get|delete --offering ID   (osbill case --help)\n"
        "  token                      print a fresh access token\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "init"))
        return cli_init(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "login"))
        return cli_login(argc - 1, argv + 1);
    if (!strcmp(cmd, "offering"))
        return cli_offering(argc - 1, argv + 1);
    if (!strcmp(cmd, "instance"))
        return cli_instance(argc - 1, argv + 1);
    if (!strcmp(cmd, "key"))
        return cli_key(argc - 1, argv + 1);
    if (!strcmp(cmd, "usage"))
        return cli_usage(argc - 1, argv + 1);
    if (!strcmp(cmd, "billing"))
        return cli_billing(argc - 1, argv + 1);
    if (!strcmp(cmd, "invoice"))
        return cli_invoice(argc - 1, argv + 1);
    if (!strcmp(cmd, "statement"))
        return cli_statement(argc - 1, argv + 1);
    if (!strcmp(cmd, "case"))
        return cli_case(argc - 1, argv + 1);
    if (!strcmp(cmd, "reclamation"))
        return cli_reclamation(argc - 1, argv + 1);
    static const char *const groups[] = {"account", "user",   "serviceid", "apikey",
                                         "policy",  "client", "keys",      "token"};
    for (size_t i = 0; i < ARRAY_LEN(groups); i++)
        if (!strcmp(cmd, groups[i]))
            return cli_api(cmd, argc - 1, argv + 1);
    fprintf(stderr, "osbill: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
