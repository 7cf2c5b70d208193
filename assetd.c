/*
 * assetd.c - the daemon (being built): prints its version.
 */
#include <stdio.h>

int main(void)
{
	printf("assetd %s\n", ASSETD_VERSION);
	return 0;
}
