"""Test support code: LocalStack, a CloudFormation response server, fakes and builders."""
