/*
 * assetctl.c - the admin CLI (being built): prints its version.
 */
#include <stdio.h>

int main(void)
{
	printf("assetctl %s\n", ASSETD_VERSION);
	return 0;
}
