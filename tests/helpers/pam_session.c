/* pam-session SERVICE USER [CMD ARGS…] — open a PAM session the way login does and run CMD
 * in it (in this process, so what the session modules changed — its network and mount
 * namespaces — is CMD's). No authentication. Exit: CMD's status; 3 when the session could not
 * be opened (the PAM error on stderr); 2 usage. Test helper for pam/. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <unistd.h>

static int no_conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
  (void)n; (void)m; (void)r; (void)d;
  return PAM_CONV_ERR;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pam-session SERVICE USER [CMD ARGS...]\n");
    return 2;
  }
  struct pam_conv conv = {no_conv, NULL};
  pam_handle_t *pamh = NULL;
  int rc = pam_start(argv[1], argv[2], &conv, &pamh);
  if (rc == PAM_SUCCESS) rc = pam_open_session(pamh, 0);
  if (rc != PAM_SUCCESS) {
    fprintf(stderr, "pam-session: %s\n", pamh ? pam_strerror(pamh, rc) : "pam_start failed");
    return 3;
  }
  if (argc == 3) return 0;
  fflush(NULL);
  execvp(argv[3], argv + 3);
  perror(argv[3]);
  return 127;
}
