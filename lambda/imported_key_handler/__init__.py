"""Lambda handler that imports key material from Secrets Manager into an EXTERNAL KMS key.

This package is shipped inside the Lambda asset and inside the library's wheel. Importing the
package itself is cheap (no boto3, no crhelper) so the construct can read ``contract`` at synth.
"""
